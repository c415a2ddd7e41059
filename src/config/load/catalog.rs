//! `outbound.event_types`: the event-type catalog, each JSON Schema compiled (and each
//! example checked against it) while the file is loaded.

use super::*;

impl Loader<'_> {
    /// `event_types`: the catalog, each schema compiled (and each example checked against
    /// it) now, so a bad one stops the load with its position.
    pub(super) fn event_types(&mut self, node: &Node, path: &str) -> Option<Vec<EventTypeConfig>> {
        let types = self.each(node, path, |l, item, p| {
            let f = l.fields(
                item,
                p,
                &["name", "description", "schema", "example", "deprecated"],
            )?;
            let name = l.required(&f, "name").and_then(|n| {
                l.parsed(n, &f.path("name"), |s| {
                    crate::config::values::event_type(s).map(|_| s.to_string())
                })
            });
            let description = l.with_default(&f, "description", String::new(), Self::string);
            let deprecated = l.with_default(&f, "deprecated", false, Self::boolean);
            let schema = f.get("schema").and_then(|n| l.schema(n, &f.path("schema")));
            let example = f.get("example").map(|n| l.json(n, &f.path("example")));
            if let (Some(schema), Some(example), Some(at)) =
                (&schema, &example, f.get("example").map(|n| n.at))
            {
                let checked = jsonschema::validator_for(schema).map(|v| {
                    v.validate(example)
                        .map_err(|e| format!("{} at {:?}", e, e.instance_path().as_str()))
                });
                if let Ok(Err(why)) = checked {
                    l.error(
                        at,
                        &f.path("example"),
                        format!("does not match the schema: {why}"),
                    );
                }
            }
            if f.get("schema").is_some() && schema.is_none() {
                return None;
            }
            Some(EventTypeConfig {
                name: name?,
                description: description?,
                schema,
                example,
                deprecated: deprecated?,
            })
        })?;
        for (i, t) in types.iter().enumerate() {
            if types[..i].iter().any(|o| o.name == t.name) {
                self.error(
                    node.at,
                    &format!("{path}[{i}].name"),
                    "duplicate event type",
                );
            }
        }
        Some(types)
    }

    /// A JSON Schema, inline or `file:PATH` (a JSON file), compiled to check it.
    fn schema(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        let schema = match &node.value {
            Value::Str(s) if s.starts_with("file:") => {
                let file = &s["file:".len()..];
                let text = std::fs::read_to_string(file)
                    .map_err(|e| self.error(node.at, path, format!("cannot read {file}: {e}")))
                    .ok()?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| self.error(node.at, path, format!("{file} is not JSON: {e}")))
                    .ok()?
            }
            _ => self.json(node, path),
        };
        match jsonschema::validator_for(&schema) {
            Ok(_) => Some(schema),
            Err(why) => {
                self.error(node.at, path, format!("not a valid JSON Schema: {why}"));
                None
            }
        }
    }

    /// With `events.validate` and a catalog, every type a subscription written in the file
    /// names (a name, `prefix.*` or `*`) must match a type of the catalog, as through the API.
    pub(super) fn check_catalog(
        &mut self,
        f: &Fields,
        events: &EventsConfig,
        types: &[EventTypeConfig],
        subscriptions: &[SubscriptionConfig],
    ) {
        if !events.validate || types.is_empty() {
            return;
        }
        let items = match f.get("subscriptions").map(|n| &n.value) {
            Some(Value::Seq(items)) => items.as_slice(),
            _ => return,
        };
        for (i, (subscription, item)) in subscriptions.iter().zip(items).enumerate() {
            for pattern in &subscription.event_types {
                if !types
                    .iter()
                    .any(|t| crate::config::values::pattern_matches(pattern, &t.name))
                {
                    self.error(
                        item.at,
                        &format!("{}[{i}].event_types", f.path("subscriptions")),
                        format!("{pattern:?} names no type of outbound.event_types (events.validate is on)"),
                    );
                }
            }
        }
    }
}
