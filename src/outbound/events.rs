//! `POST /events`: the app publishes an event once; hookgate stores one message per
//! matching, enabled subscription, all in one commit, before it answers
//! `202 {"event_id", "deliveries": [{"subscription", "delivery_id"}]}`. An event that
//! matches nothing is accepted with no deliveries (and counted). `Idempotency-Key`
//! dedupes the whole event per tenant: a repeat gets the first answer back.

use std::collections::BTreeMap;

use bytes::Bytes;
use pingora::http::RequestHeader;
use serde_json::{json, Value};

use super::{OutboundApp, IDEMPOTENCY_WINDOW};
use crate::clock::{now_ms, unix_now};
use crate::config::values::{event_type, tenant as valid_tenant, valid_label};
use crate::config::{EventSource, EventsConfig, TemplatePart, SUBSCRIPTIONS_ENDPOINT};
use crate::error_response::ErrorResponse;
use crate::header_text::header_or_400;
use crate::ids::{new_delivery_id, random_hex};
use crate::metrics::METRICS;
use crate::store::queue::{Enqueued, EventRef, Idempotency, Record, State};
use crate::telemetry::Span;

/// Labels an event may carry.
const MAX_LABELS: usize = 32;
const MAX_LABEL_VALUE: usize = 256;

/// What an event is, read from its request.
struct Event {
    event_type: String,
    tenant: Option<String>,
    labels: BTreeMap<String, String>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(400, code, message)
}

/// The body as JSON, parsed on first need: a body that no source reads may be anything.
struct Body<'a> {
    bytes: &'a [u8],
    json: Option<Result<Value, String>>,
}

impl Body<'_> {
    /// The scalar at `pointer`: `None` when it is missing or `null`; an object, an array or
    /// an empty string is an error (`code`), never read as missing.
    fn pointer(
        &mut self,
        pointer: &str,
        code: &'static str,
    ) -> Result<Option<String>, ErrorResponse> {
        let bytes = self.bytes;
        let json = self
            .json
            .get_or_insert_with(|| serde_json::from_slice(bytes).map_err(|e| e.to_string()));
        let json = json
            .as_ref()
            .map_err(|e| bad("invalid_json", format!("the event is not JSON: {e}")))?;
        match json.pointer(pointer) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(bad(code, format!("the event's {pointer} is empty")))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(bad(
                code,
                format!("the event's {pointer} is an object or a list, not a value"),
            )),
        }
    }

    /// The first of `sources` that gives a value. A source that is present but unreadable
    /// is refused with `code`: it does not fall through to the next source, nor to "none".
    fn first(
        &mut self,
        header: &RequestHeader,
        sources: &[EventSource],
        code: &'static str,
    ) -> Result<Option<String>, ErrorResponse> {
        for source in sources {
            let value = match source {
                EventSource::Header(name) => {
                    header_or_400(&header.headers, name, code)?.map(str::to_string)
                }
                EventSource::Pointer(pointer) => self.pointer(pointer, code)?,
                EventSource::Template(parts) => self.template(parts, code)?,
            };
            if value.is_some() {
                return Ok(value);
            }
        }
        Ok(None)
    }

    fn template(
        &mut self,
        parts: &[TemplatePart],
        code: &'static str,
    ) -> Result<Option<String>, ErrorResponse> {
        let mut text = String::new();
        for part in parts {
            match part {
                TemplatePart::Text(t) => text.push_str(t),
                TemplatePart::Pointer(p) => match self.pointer(p, code)? {
                    Some(value) => text.push_str(&value),
                    None => return Ok(None),
                },
            }
        }
        Ok(Some(text))
    }
}

/// Reads the event's type, tenant and labels as `config` says.
fn read_event(
    header: &RequestHeader,
    body: &[u8],
    config: &EventsConfig,
) -> Result<Event, ErrorResponse> {
    let mut body = Body {
        bytes: body,
        json: None,
    };
    let event_type_name = body
        .first(header, &config.event_type, "invalid_event_type")?
        .ok_or_else(|| {
        bad(
            "missing_event_type",
            "no event type: send Hookgate-Event-Type, or a body with the configured field (outbound.events.type)",
        )
    })?;
    event_type(&event_type_name).map_err(|e| bad("invalid_event_type", e))?;
    let tenant = body.first(header, &config.tenant, "invalid_tenant")?;
    if let Some(tenant) = &tenant {
        valid_tenant(tenant).map_err(|e| bad("invalid_tenant", e))?;
    }
    let mut labels = BTreeMap::new();
    for (name, value) in &header.headers {
        let Some(label) = name.as_str().strip_prefix("hookgate-label-") else {
            continue;
        };
        let value = value
            .to_str()
            .map_err(|_| bad("invalid_label", format!("{name}: not text")))?;
        if labels
            .insert(label.to_string(), value.trim().to_string())
            .is_some()
        {
            return Err(bad(
                "invalid_label",
                format!("{name} appears more than once"),
            ));
        }
    }
    for (name, source) in &config.labels {
        if labels.contains_key(name) {
            continue; // a header says it outright
        }
        if let Some(value) = body.first(header, std::slice::from_ref(source), "invalid_label")? {
            labels.insert(name.clone(), value);
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(bad("invalid_label", format!("at most {MAX_LABELS} labels")));
    }
    if let Some((name, _)) = labels
        .iter()
        .find(|(n, v)| !valid_label(n) || v.len() > MAX_LABEL_VALUE)
    {
        return Err(bad(
            "invalid_label",
            format!("label {name:?}: a name is letters, digits, - and _; a value at most {MAX_LABEL_VALUE} bytes"),
        ));
    }
    Ok(Event {
        event_type: event_type_name,
        tenant,
        labels,
    })
}

impl OutboundApp {
    /// Publishes an event read from `header` and `body`: the `202` answer.
    pub(super) async fn publish(
        &self,
        header: &RequestHeader,
        body: Bytes,
        trace: Option<&mut Span>,
    ) -> Result<(Value, bool), ErrorResponse> {
        let live = self.live.load();
        let event = read_event(header, &body, &live.events)?;
        live.catalog.check(&event.event_type, &body)?;
        drop(live);
        let index = self.subscriptions.index().await.map_err(|e| {
            tracing::error!(error = %e, "cannot read the subscriptions");
            ErrorResponse::new(
                503,
                "store_unavailable",
                "the subscriptions cannot be read; retry later",
            )
            .with_header("Retry-After", "1")
        })?;
        let matching = index.matching(event.tenant.as_deref(), &event.event_type, &event.labels);
        let event_id = format!("evt_{}", random_hex(12));
        // Every delivery's attempts are spans under the publish.
        let traceparent = trace.as_ref().map(|s| s.context().traceparent());
        if let Some(span) = trace.filter(|s| s.is_recording()) {
            span.set("hookgate.event_id", event_id.clone());
            span.set("hookgate.event_type", event.event_type.clone());
            if let Some(tenant) = &event.tenant {
                span.set("hookgate.tenant", tenant.clone());
            }
            span.event(
                "fanout",
                vec![("hookgate.subscriptions", (matching.len() as i64).into())],
            );
        }
        let content_type = header_or_400(&header.headers, "content-type", "invalid_content_type")?
            .map(str::to_string);
        let sent_key = header_or_400(
            &header.headers,
            "idempotency-key",
            "invalid_idempotency_key",
        )?
        .map(str::to_string);
        let now = now_ms();
        let timestamp = unix_now();
        let records: Vec<Record> = matching
            .iter()
            .map(|s| Record {
                id: new_delivery_id(),
                endpoint: SUBSCRIPTIONS_ENDPOINT.to_string(),
                timestamp,
                content_type: content_type.clone(),
                created_ms: now,
                state: State::Pending,
                due_ms: now,
                round_attempts: 0,
                attempts: Vec::new(),
                target: None,
                event: Some(EventRef {
                    event_id: event_id.clone(),
                    subscription: s.id.clone(),
                    tenant: event.tenant.clone(),
                    event_type: event.event_type.clone(),
                }),
                trace: traceparent.clone(),
                inbound: None,
                order: None,
                idempotency_key: sent_key.clone(),
            })
            .collect();
        let deliveries: Vec<Value> = records
            .iter()
            .map(|r| json!({ "subscription": r.event.as_ref().map(|e| &e.subscription), "delivery_id": r.id }))
            .collect();
        let answer = json!({ "event_id": event_id, "event_type": event.event_type, "deliveries": deliveries });
        // Scoped per tenant: two tenants' apps may pick the same keys.
        let idempotency = sent_key.map(|key| Idempotency {
            key: format!("events\n{}\n{}", event.tenant.as_deref().unwrap_or(""), key),
            expires_ms: now + IDEMPOTENCY_WINDOW.as_millis() as u64,
            receipt: answer.to_string(),
        });
        let count = records.len();
        let enqueued = self
            .queue
            .enqueue_many(records, body, idempotency)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not store an event's deliveries");
                ErrorResponse::new(
                    503,
                    "queue_unavailable",
                    "the event was not stored; retry later",
                )
                .with_header("Retry-After", "5")
            })?;
        let outcome = match &enqueued {
            Enqueued::Duplicate(_) => "duplicate",
            Enqueued::New if count == 0 => "unmatched",
            Enqueued::New => "fanned_out",
        };
        METRICS.record_event(&event.event_type, outcome, count);
        tracing::debug!(event_id, event_type = %event.event_type, deliveries = count, outcome, "event published");
        match enqueued {
            Enqueued::New => {
                if count > 0 {
                    self.wake.notify_one();
                }
                Ok((answer, false))
            }
            Enqueued::Duplicate(receipt) => {
                let earlier = serde_json::from_str(&receipt).unwrap_or(answer);
                Ok((earlier, true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut header = RequestHeader::build("POST", b"/events", None).unwrap();
        for (name, value) in headers {
            header.insert_header(name.to_string(), *value).unwrap();
        }
        header
    }

    #[test]
    fn the_type_comes_from_the_first_source_that_has_it() {
        let config = EventsConfig::default();
        let body = br#"{"type": "job.created", "job_id": 42}"#;
        let event = read_event(&request(&[]), body, &config).unwrap();
        assert_eq!(event.event_type, "job.created");
        let header = request(&[
            ("Hookgate-Event-Type", "application.scored"),
            ("Hookgate-Tenant", "acme"),
        ]);
        let event = read_event(&header, body, &config).unwrap();
        assert_eq!(event.event_type, "application.scored");
        assert_eq!(event.tenant.as_deref(), Some("acme"));
        let missing = read_event(&request(&[]), b"{}", &config).err().unwrap();
        assert_eq!(missing.code, "missing_event_type");
        let not_json = read_event(&request(&[]), b"<xml/>", &config).err().unwrap();
        assert_eq!(not_json.code, "invalid_json");
    }

    #[test]
    fn a_template_joins_pointers_and_labels_come_from_headers_and_the_body() {
        let config = EventsConfig {
            event_type: vec![EventSource::parse("{/event_type}.{/action}").unwrap()],
            tenant: Vec::new(),
            labels: vec![("job_id".into(), EventSource::parse("json:/job/id").unwrap())],
            validate: false,
        };
        let body = br#"{"event_type": "application", "action": "created", "job": {"id": 7}}"#;
        let header = request(&[("Hookgate-Label-Region", "eu")]);
        let event = read_event(&header, body, &config).unwrap();
        assert_eq!(event.event_type, "application.created");
        assert_eq!(event.labels.get("job_id").map(String::as_str), Some("7"));
        assert_eq!(event.labels.get("region").map(String::as_str), Some("eu"));
        let half = read_event(&request(&[]), br#"{"event_type": "application"}"#, &config);
        assert_eq!(half.err().unwrap().code, "missing_event_type");
    }

    /// A tenant or type that is there but cannot be read is refused: it never falls back
    /// to the next source, nor to "no tenant".
    #[test]
    fn unreadable_sources_are_refused_not_skipped() {
        let config = EventsConfig {
            tenant: vec![
                EventSource::parse("header:Hookgate-Tenant").unwrap(),
                EventSource::parse("json:/tenant").unwrap(),
            ],
            ..EventsConfig::default()
        };
        let body = br#"{"type": "job.created", "tenant": "fallback"}"#;
        let code = |header: RequestHeader, body: &[u8]| {
            read_event(&header, body, &config).err().map(|e| e.code)
        };
        let mut raw = request(&[]);
        raw.insert_header("Hookgate-Tenant", "münchen".as_bytes())
            .unwrap();
        assert_eq!(code(raw, body), Some("invalid_tenant"));
        assert_eq!(
            code(request(&[("Hookgate-Tenant", "")]), body),
            Some("invalid_tenant")
        );
        assert_eq!(
            code(request(&[("Hookgate-Tenant", "a b")]), body),
            Some("invalid_tenant")
        );
        let mut twice = request(&[("Hookgate-Tenant", "a")]);
        twice.append_header("Hookgate-Tenant", "b").unwrap();
        assert_eq!(code(twice, body), Some("invalid_tenant"));
        for body in [
            &br#"{"type": "job.created", "tenant": ""}"#[..],
            br#"{"type": "job.created", "tenant": {"id": 1}}"#,
            br#"{"type": "job.created", "tenant": "m\u00fcnchen"}"#,
        ] {
            assert_eq!(code(request(&[]), body), Some("invalid_tenant"));
        }
        let mut raw = request(&[]);
        raw.insert_header("Hookgate-Event-Type", &b"t\xe9"[..])
            .unwrap();
        assert_eq!(code(raw, body), Some("invalid_event_type"));
        let event = read_event(&request(&[]), body, &config).unwrap();
        assert_eq!(event.tenant.as_deref(), Some("fallback"));
        let event = read_event(&request(&[]), br#"{"type": "x", "tenant": null}"#, &config);
        assert_eq!(event.unwrap().tenant, None);
    }
}
