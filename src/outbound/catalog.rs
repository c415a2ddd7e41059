//! The event-type catalog (`outbound.event_types`): what `GET /admin/event-types` lists,
//! and, with `outbound.events.validate`, the check of a published payload against its
//! type's JSON Schema (`422 invalid_payload`, naming the failing path and keyword).

use serde_json::{json, Value};

use super::subscriptions::index::pattern_matches;
use crate::config::EventTypeConfig;
use crate::error_response::ErrorResponse;

/// The catalog with each schema compiled once.
pub struct Catalog {
    types: Vec<(EventTypeConfig, Option<jsonschema::Validator>)>,
    validate: bool,
}

impl Catalog {
    /// The config's catalog (its schemas were checked when it was loaded).
    pub fn new(types: &[EventTypeConfig], validate: bool) -> Result<Self, String> {
        let types = types
            .iter()
            .map(|t| {
                let validator = t
                    .schema
                    .as_ref()
                    .map(jsonschema::validator_for)
                    .transpose()
                    .map_err(|e| format!("event type {}: not a valid JSON Schema: {e}", t.name))?;
                Ok((t.clone(), validator))
            })
            .collect::<Result<_, String>>()?;
        Ok(Catalog { types, validate })
    }

    /// `GET /admin/event-types`.
    pub fn view(&self) -> Value {
        let types: Vec<Value> = self
            .types
            .iter()
            .map(|(t, _)| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "schema": t.schema,
                    "example": t.example,
                    "deprecated": t.deprecated,
                })
            })
            .collect();
        json!({ "event_types": types })
    }

    /// With `validate`, a payload of a type with a schema must pass it; types without a
    /// schema, and types not in the catalog, pass.
    pub fn check(&self, event_type: &str, payload: &[u8]) -> Result<(), ErrorResponse> {
        if !self.validate {
            return Ok(());
        }
        let Some(validator) = self
            .types
            .iter()
            .find(|(t, _)| t.name == event_type)
            .and_then(|(_, v)| v.as_ref())
        else {
            return Ok(());
        };
        let payload: Value = serde_json::from_slice(payload).map_err(|e| {
            ErrorResponse::new(400, "invalid_json", format!("the event is not JSON: {e}"))
        })?;
        match validator.validate(&payload) {
            Ok(()) => Ok(()),
            Err(e) => {
                let path = e.instance_path().as_str().to_string();
                let keyword = e.kind().keyword().to_string();
                let message = format!(
                    "the {event_type} payload fails its schema at {:?} ({keyword}): {e}",
                    if path.is_empty() { "/" } else { &path }
                );
                // `field` names the failing place as a JSON pointer ("" is the whole payload).
                Err(ErrorResponse::new(422, "invalid_payload", message).with_field(path))
            }
        }
    }

    /// With `validate` and a catalog, each of a subscription's `event_types` (a name, a
    /// `prefix.*` or `*`) must name at least one type of the catalog.
    pub fn check_subscription(
        &self,
        fields: &serde_json::Map<String, Value>,
    ) -> Result<(), ErrorResponse> {
        if !self.validate || self.types.is_empty() {
            return Ok(());
        }
        let patterns = fields.get("event_types").and_then(Value::as_array);
        for pattern in patterns.into_iter().flatten().filter_map(Value::as_str) {
            if !self
                .types
                .iter()
                .any(|(t, _)| pattern_matches(pattern, &t.name))
            {
                return Err(ErrorResponse::new(
                    422,
                    "unknown_event_type",
                    format!(
                        "{pattern:?} names no event type of the catalog (GET /admin/event-types)"
                    ),
                )
                .with_field("event_types"));
            }
        }
        Ok(())
    }
}
