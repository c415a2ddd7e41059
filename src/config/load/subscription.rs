//! `outbound.subscriptions`: subscriptions written in the file, which the API shows but
//! does not change.

use super::*;

impl Loader<'_> {
    /// One of `outbound.subscriptions`.
    pub(super) fn subscription(&mut self, node: &Node, path: &str) -> Option<SubscriptionConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "id",
                "tenant",
                "url",
                "event_types",
                "filters",
                "sign",
                "retry",
                "rate_limit",
                "concurrency",
                "description",
                "tls",
                "trace_propagation",
                "auth",
            ],
        )?;
        let auth = self.optional(&f, "auth", Self::receiver_auth);
        let tls = self.optional(&f, "tls", Self::egress_tls);
        let trace_propagation = self.with_default(&f, "trace_propagation", true, Self::boolean);
        let id = self.required(&f, "id").and_then(|n| {
            self.parsed(n, &f.path("id"), |s| {
                route_name(s).map(|id| format!("{CONFIG_SUBSCRIPTION_PREFIX}{id}"))
            })
        });
        let tenant = self.optional(&f, "tenant", |l, n, p| {
            l.parsed(n, p, |s| values::tenant(s).map(|_| s.to_string()))
        });
        let url = self.required(&f, "url").and_then(|n| {
            self.parsed(n, &f.path("url"), |s| {
                parse_destination(s).map(|_| s.to_string())
            })
        });
        let event_types = self.required(&f, "event_types").and_then(|n| {
            let types = self.each(n, &f.path("event_types"), |l, item, p| {
                l.parsed(item, p, |s| {
                    values::event_type_pattern(s).map(|_| s.to_string())
                })
            })?;
            if types.is_empty() {
                self.error(
                    n.at,
                    &f.path("event_types"),
                    "give at least one event type (* takes every type)",
                );
                return None;
            }
            Some(types)
        });
        let filters = self.with_default(&f, "filters", Default::default(), |l, n, p| {
            let Value::Map(entries) = &n.value else {
                l.error(
                    n.at,
                    p,
                    format!(
                        "expected a mapping of labels to values, found {}",
                        n.value.kind()
                    ),
                );
                return None;
            };
            let mut filters = std::collections::BTreeMap::new();
            for (k, v) in entries {
                if !values::valid_label(&k.name) {
                    l.error(
                        k.at,
                        &join(p, &k.name),
                        "a label name is letters, digits, - and _",
                    );
                }
                let value = l.string(v, &join(p, &k.name))?;
                filters.insert(k.name.to_ascii_lowercase(), value);
            }
            Some(filters)
        });
        let sign = self
            .required(&f, "sign")
            .and_then(|n| self.sign(n, &f.path("sign")));
        // Checked like an endpoint's; kept as JSON, as the store keeps the API's.
        let policy = self.policy(&f).map(|_| {
            ["retry", "rate_limit", "concurrency"]
                .into_iter()
                .filter_map(|key| {
                    f.get(key)
                        .map(|n| (key.to_string(), self.json(n, &f.path(key))))
                })
                .collect()
        });
        let description = self.with_default(&f, "description", String::new(), Self::string);
        Some(SubscriptionConfig {
            id: id?,
            tenant: tenant?,
            url: url?,
            event_types: event_types?,
            filters: filters?,
            sign: sign?,
            policy: policy?,
            description: description?,
            tls: tls?,
            trace_propagation: trace_propagation?,
            auth: auth?,
        })
    }

    /// A node as JSON, with `${VAR}` substituted in strings.
    pub(super) fn json(&mut self, node: &Node, path: &str) -> serde_json::Value {
        use serde_json::Value as Json;
        match &node.value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => i64::try_from(*i).map_or(Json::Null, Json::from),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Value::Str(_) => self.string(node, path).map_or(Json::Null, Json::String),
            Value::Seq(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.json(n, &format!("{path}[{i}]")))
                    .collect(),
            ),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), self.json(v, &join(path, &k.name))))
                    .collect(),
            ),
        }
    }
}
