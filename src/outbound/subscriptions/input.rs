//! A subscription as the admin API receives it (`POST` and `PATCH /admin/subscriptions`),
//! checked field by field: every refusal is a 400 with a stable code and the field's name.
//! A `PATCH` is applied to the stored subscription's fields and the result checked as a
//! whole, the same way as a new one.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::MAX_TIMEOUT;
use crate::config::values::{event_type_pattern, tenant, valid_label};
use crate::config::{delivery_policy_json, parse_destination, Cidr, DeliveryPolicy, ReceiverAuth};
use crate::error_response::ErrorResponse;
use crate::outbound::ssrf;
use crate::schemes::SCHEME_NAMES;
use crate::store::subscriptions::Subscription;

/// Fields a `PATCH` may change.
const EDITABLE: &[&str] = &[
    "tenant",
    "url",
    "event_types",
    "filters",
    "retry",
    "rate_limit",
    "concurrency",
    "enabled",
    "description",
    "metadata",
    "trace_propagation",
    "auth",
];
/// Fields only a `POST` may set: the signing is changed with `rotate-secret`.
const ON_CREATE: &[&str] = &["scheme", "algorithm", "secret"];

const MAX_EVENT_TYPES: usize = 256;
const MAX_FILTERS: usize = 32;
const MAX_DESCRIPTION: usize = 1024;
const MAX_METADATA_BYTES: usize = 16 * 1024;

fn bad(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(400, code, message).with_field(field)
}

/// The body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ErrorResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ErrorResponse::new(
            400,
            "invalid_json",
            "expected a JSON object",
        )),
        Err(e) => Err(ErrorResponse::new(
            400,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )),
    }
}

/// What a new subscription's body gives besides its fields: the secret, if any.
pub struct Created {
    pub subscription: Subscription,
    pub secret: Option<String>,
}

/// A new subscription from a `POST` body; `blank` holds its id and times.
pub async fn create(
    body: Map<String, Value>,
    blank: Subscription,
    allow: &[Cidr],
) -> Result<Created, ErrorResponse> {
    let mut subscription = blank;
    let mut secret = None;
    for (key, value) in &body {
        match key.as_str() {
            "scheme" => subscription.scheme = scheme(value)?,
            "algorithm" => subscription.algorithm = algorithm(value)?,
            "secret" => secret = Some(text(value, "secret", 4096)?),
            key if EDITABLE.contains(&key) => set(&mut subscription, key, value)?,
            other => return Err(unknown(other)),
        }
    }
    if !body.contains_key("url") {
        return Err(bad("missing_field", "url", "url is required"));
    }
    if !body.contains_key("event_types") {
        return Err(bad(
            "missing_field",
            "event_types",
            "event_types is required (a list such as [\"application.scored\"] or [\"*\"])",
        ));
    }
    if subscription.algorithm.is_some() && subscription.scheme != "standard-webhooks" {
        return Err(bad(
            "invalid_algorithm",
            "algorithm",
            "algorithm ed25519 is Standard Webhooks' v1a: use scheme standard-webhooks",
        ));
    }
    check(&subscription, allow).await?;
    Ok(Created {
        subscription,
        secret,
    })
}

/// A stored subscription with a `PATCH` body applied.
pub async fn patch(
    body: Map<String, Value>,
    stored: &Subscription,
    allow: &[Cidr],
) -> Result<Subscription, ErrorResponse> {
    if stored.from_config {
        return Err(ErrorResponse::new(
            409,
            "subscription_from_config",
            "this subscription is written in the config file: change it there",
        ));
    }
    let mut subscription = stored.clone();
    for (key, value) in &body {
        match key.as_str() {
            key if EDITABLE.contains(&key) => set(&mut subscription, key, value)?,
            key if ON_CREATE.contains(&key) => {
                return Err(bad(
                    "read_only_field",
                    key,
                    format!("{key} is set when the subscription is created (rotate-secret changes the secret)"),
                ))
            }
            other => return Err(unknown(other)),
        }
    }
    if body.contains_key("enabled") && subscription.enabled {
        subscription.disabled_reason = None;
    }
    check(&subscription, allow).await?;
    Ok(subscription)
}

fn unknown(field: &str) -> ErrorResponse {
    let mut known: Vec<&str> = EDITABLE.iter().chain(ON_CREATE).copied().collect();
    known.sort_unstable();
    bad(
        "unknown_field",
        field,
        format!("unknown field {field:?} (known: {})", known.join(", ")),
    )
}

/// Sets one editable field.
fn set(s: &mut Subscription, key: &str, value: &Value) -> Result<(), ErrorResponse> {
    match key {
        "tenant" => {
            s.tenant = match value {
                Value::Null => None,
                v => {
                    let name = v.as_str().ok_or_else(|| {
                        bad("invalid_tenant", "tenant", "expected a string or null")
                    })?;
                    tenant(name).map_err(|e| bad("invalid_tenant", "tenant", e))?;
                    Some(name.to_string())
                }
            }
        }
        "url" => s.url = url(value)?,
        "event_types" => s.event_types = event_types(value)?,
        "filters" => s.filters = filters(value)?,
        "retry" => s.retry = (!value.is_null()).then(|| value.clone()),
        "rate_limit" => {
            s.rate_limit = match value {
                Value::Null => None,
                v => Some(text(v, "rate_limit", 64)?),
            }
        }
        "concurrency" => {
            s.concurrency = match value {
                Value::Null => None,
                v => Some(
                    crate::config::values::whole_number(v)
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| {
                            bad(
                                "invalid_concurrency",
                                "concurrency",
                                "expected a whole number from 1 to 1024",
                            )
                        })? as u32,
                ),
            }
        }
        "enabled" => {
            s.enabled = value
                .as_bool()
                .ok_or_else(|| bad("invalid_field", "enabled", "expected true or false"))?;
            if !s.enabled && s.disabled_reason.is_none() {
                s.disabled_reason = Some("disabled through the admin API".into());
            }
        }
        "description" => s.description = text(value, "description", MAX_DESCRIPTION)?,
        "trace_propagation" => {
            s.trace_propagation = value.as_bool().ok_or_else(|| {
                bad(
                    "invalid_field",
                    "trace_propagation",
                    "expected true or false",
                )
            })?
        }
        "metadata" => {
            let Value::Object(map) = value else {
                return Err(bad("invalid_field", "metadata", "expected a JSON object"));
            };
            if value.to_string().len() > MAX_METADATA_BYTES {
                return Err(bad(
                    "invalid_field",
                    "metadata",
                    format!("metadata is limited to {MAX_METADATA_BYTES} bytes of JSON"),
                ));
            }
            s.metadata = map.clone();
        }
        "auth" => s.auth = auth(value)?,
        _ => unreachable!("only editable fields are set"),
    }
    Ok(())
}

/// `auth`: headers, Basic or OAuth2, checked as in the YAML; `null` removes it. A
/// refusal never repeats a value it was sent (they are secrets).
fn auth(value: &Value) -> Result<Option<ReceiverAuth>, ErrorResponse> {
    if value.is_null() {
        return Ok(None);
    }
    // `null` removes the whole of `auth`; a member is left out, never sent as null.
    let members = value.as_object().into_iter().flatten();
    if let Some((name, _)) = members.into_iter().find(|(_, v)| v.is_null()) {
        return Err(bad(
            "invalid_auth",
            format!("auth.{name}"),
            "leave it out rather than send null",
        ));
    }
    let auth: ReceiverAuth = serde_json::from_value(value.clone()).map_err(|e| {
        bad(
            "invalid_auth",
            "auth",
            format!("expected {{headers: {{name: value}}, basic: {{user, password}}, oauth2: {{token_url, client_id, client_secret, scopes, audience, client_auth}}}}: {}", without_quoted(&e.to_string())),
        )
    })?;
    auth.check()
        .map_err(|(field, message)| bad("invalid_auth", field, message))?;
    Ok(Some(auth))
}

/// `text` with what it quotes left out: serde's messages quote the value they refused.
fn without_quoted(text: &str) -> String {
    text.split('"')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "…" } else { part })
        .collect::<Vec<_>>()
        .join("\"")
}

/// A string of at most `max` bytes, not empty.
fn text(value: &Value, field: &str, max: usize) -> Result<String, ErrorResponse> {
    match value.as_str() {
        // Counted in characters, as JSON Schema's maxLength counts.
        Some(s) if !s.is_empty() && s.chars().count() <= max => Ok(s.to_string()),
        Some("") => Err(bad("invalid_field", field, format!("{field} is empty"))),
        Some(_) => Err(bad(
            "invalid_field",
            field,
            format!("{field} is longer than {max} characters"),
        )),
        None => Err(bad("invalid_field", field, "expected a string")),
    }
}

fn url(value: &Value) -> Result<String, ErrorResponse> {
    let url = text(value, "url", 4096)?;
    parse_destination(&url).map_err(|e| bad("invalid_url", "url", e))?;
    Ok(url)
}

fn scheme(value: &Value) -> Result<String, ErrorResponse> {
    let name = text(value, "scheme", 64)?;
    if !SCHEME_NAMES.contains(&name.as_str()) || name == "hmac" {
        return Err(bad(
            "invalid_scheme",
            "scheme",
            format!(
                "{name:?} is not a named scheme (such as standard-webhooks, hiresscope, rejento)"
            ),
        ));
    }
    Ok(name)
}

fn algorithm(value: &Value) -> Result<Option<String>, ErrorResponse> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s == "ed25519" => Ok(Some(s.clone())),
        Value::String(s) if s == "hmac-sha256" => Ok(None),
        _ => Err(bad(
            "invalid_algorithm",
            "algorithm",
            "expected ed25519 (Standard Webhooks v1a) or hmac-sha256 (the default)",
        )),
    }
}

fn event_types(value: &Value) -> Result<Vec<String>, ErrorResponse> {
    let Some(items) = value.as_array() else {
        return Err(bad(
            "invalid_event_types",
            "event_types",
            "expected a list of event types",
        ));
    };
    if items.is_empty() || items.len() > MAX_EVENT_TYPES {
        return Err(bad(
            "invalid_event_types",
            "event_types",
            format!("give 1 to {MAX_EVENT_TYPES} event types (\"*\" takes every type)"),
        ));
    }
    let mut types = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("event_types[{i}]");
        let pattern = item
            .as_str()
            .ok_or_else(|| bad("invalid_event_types", &field, "expected a string"))?;
        event_type_pattern(pattern).map_err(|e| bad("invalid_event_types", &field, e))?;
        types.push(pattern.to_string());
    }
    types.sort();
    types.dedup();
    Ok(types)
}

fn filters(value: &Value) -> Result<BTreeMap<String, String>, ErrorResponse> {
    let Some(map) = value.as_object() else {
        return Err(bad(
            "invalid_filters",
            "filters",
            "expected an object of labels, such as {\"job_id\": \"42\"}",
        ));
    };
    if map.len() > MAX_FILTERS {
        return Err(bad(
            "invalid_filters",
            "filters",
            format!("at most {MAX_FILTERS} filters"),
        ));
    }
    map.iter()
        .map(|(label, v)| {
            let field = format!("filters.{label}");
            if !valid_label(label) {
                return Err(bad(
                    "invalid_filters",
                    &field,
                    "a label name is letters, digits, - and _",
                ));
            }
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(bad("invalid_filters", &field, "expected a string")),
            };
            // Header names arrive lowercased: so are labels, everywhere.
            Ok((label.to_ascii_lowercase(), value))
        })
        .collect()
}

/// A subscription's delivery policy, from its `retry`, `rate_limit` and `concurrency`.
pub fn policy(s: &Subscription) -> Result<DeliveryPolicy, ErrorResponse> {
    let mut fields = Map::new();
    if let Some(retry) = &s.retry {
        fields.insert("retry".into(), retry.clone());
    }
    if let Some(rate) = &s.rate_limit {
        fields.insert("rate_limit".into(), Value::String(rate.clone()));
    }
    if let Some(n) = s.concurrency {
        fields.insert("concurrency".into(), n.into());
    }
    let policy = delivery_policy_json(&Value::Object(fields)).map_err(|e| {
        let field = if e.path.is_empty() {
            "retry".to_string()
        } else {
            e.path.clone()
        };
        bad("invalid_policy", field, e.message)
    })?;
    if policy.retry.timeout > MAX_TIMEOUT {
        return Err(bad(
            "invalid_policy",
            "retry.timeout",
            format!("at most {}s", MAX_TIMEOUT.as_secs()),
        ));
    }
    Ok(policy)
}

/// What holds for the subscription as a whole: its URL may be reached (the SSRF guard,
/// on every address its host resolves to), and its policy reads.
async fn check(s: &Subscription, allow: &[Cidr]) -> Result<(), ErrorResponse> {
    policy(s)?;
    let destination = parse_destination(&s.url).map_err(|e| bad("invalid_url", "url", e))?;
    ssrf::check_host(&destination.host, destination.port, allow)
        .await
        .map_err(|e| bad("destination_not_allowed", "url", e))?;
    if let Some(oauth2) = s.auth.as_ref().and_then(|a| a.oauth2.as_ref()) {
        let field = "auth.oauth2.token_url";
        let token =
            parse_destination(&oauth2.token_url).map_err(|e| bad("invalid_auth", field, e))?;
        ssrf::check_host(&token.host, token.port, allow)
            .await
            .map_err(|e| bad("destination_not_allowed", field, e))?;
    }
    Ok(())
}
