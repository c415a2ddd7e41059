//! `/admin/subscriptions`: create, list, show, change, delete, rotate a secret, enable,
//! disable, send a test event, and replay a subscription's dead letters. Answers show a
//! subscription without its secrets; only `create` and `rotate-secret` show the new secret
//! (or Ed25519 public key), once.

use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::http::Connector;
use serde_json::{json, Value};

use crate::clock::{now_ms, unix_now};
use crate::config::SUBSCRIPTIONS_ENDPOINT;
use crate::error_response::ErrorResponse;
use crate::ids::new_delivery_id;
use crate::outbound::facade::{
    pattern_matches, subscription_fields, subscription_view, Endpoints, Subscriptions,
};
use crate::store::queue::{DeliveryFilter, Queue, Record};

/// A query parameter by name.
pub type Params<'a> = dyn Fn(&str) -> Option<String> + Sync + 'a;

/// A list's page size, unless `limit` says otherwise, and the largest it may say.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// A list's `limit`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
pub fn page_size(param: &Params<'_>) -> Result<usize, ErrorResponse> {
    match param("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ErrorResponse::new(
                400,
                "invalid_limit",
                format!("limit is a whole number from 1 to {MAX_PAGE}"),
            )
            .with_field("limit")),
        },
    }
}

/// What a call answers: a status and its JSON.
pub type Answer = Result<(u16, Value), ErrorResponse>;

pub struct SubscriptionApi {
    pub subscriptions: Arc<Subscriptions>,
    pub queue: Arc<dyn Queue>,
    /// For `test`: one attempt, straight away.
    pub connector: Connector,
    /// The catalog that new and changed subscriptions' event types are checked against.
    pub endpoints: Endpoints,
}

impl SubscriptionApi {
    /// A subscription's fields from a call's body, its event types checked against the catalog.
    fn fields(&self, body: &[u8]) -> Result<serde_json::Map<String, Value>, ErrorResponse> {
        let object = subscription_fields(body)?;
        self.endpoints.check_subscription(&object)?;
        Ok(object)
    }

    /// The call `method` and `segments` (after `/admin/`) name, if it is one of these.
    pub async fn handle(
        &self,
        method: &str,
        segments: &[&str],
        param: &Params<'_>,
        body: &[u8],
    ) -> Option<Answer> {
        let subs = &self.subscriptions;
        let answer = match (method, segments) {
            ("POST", ["subscriptions"]) => match self.fields(body) {
                Ok(object) => subs.create(object).await.map(|v| (201, v)),
                Err(e) => Err(e),
            },
            ("GET", ["subscriptions"]) => self.list(param).await,
            ("GET", ["subscriptions", id]) => self.show(id).await,
            ("PATCH", ["subscriptions", id]) => match self.fields(body) {
                Ok(object) => subs.update(id, object).await.map(ok),
                Err(e) => Err(e),
            },
            ("DELETE", ["subscriptions", id]) => subs.delete(id).await.map(ok),
            ("POST", ["subscriptions", id, "rotate-secret"]) => {
                let object = if body.iter().all(u8::is_ascii_whitespace) {
                    Ok(Default::default())
                } else {
                    subscription_fields(body)
                };
                match object {
                    Ok(object) => subs.rotate(id, object).await.map(ok),
                    Err(e) => Err(e),
                }
            }
            ("POST", ["subscriptions", id, action @ ("enable" | "disable")]) => {
                let reason = format!("{action}d through the admin API");
                subs.set_enabled(id, *action == "enable", &reason)
                    .await
                    .map(ok)
            }
            ("POST", ["subscriptions", id, "test"]) => self.test(id, body).await,
            ("POST", ["subscriptions", id, "replay"]) => self.replay(id, param).await,
            _ => return None,
        };
        Some(answer)
    }

    /// `?tenant=&event_type=&state=enabled|disabled&after=<id>&limit=&stats=true`: in
    /// creation order, a page at a time; `next` is the `after` of the next page.
    async fn list(&self, param: &Params<'_>) -> Answer {
        let limit = page_size(param)?;
        let enabled = match param("state").as_deref() {
            None => None,
            Some("enabled") => Some(true),
            Some("disabled") => Some(false),
            Some(_) => {
                return Err(ErrorResponse::new(
                    400,
                    "invalid_state",
                    "state is enabled or disabled",
                )
                .with_field("state"))
            }
        };
        let (tenant, event_type) = (param("tenant"), param("event_type"));
        if let Some(name) = &tenant {
            crate::config::values::tenant(name)
                .map_err(|e| ErrorResponse::new(400, "invalid_tenant", e).with_field("tenant"))?;
        }
        let after = param("after").unwrap_or_default();
        let index = self
            .subscriptions
            .index()
            .await
            .map_err(|e| ErrorResponse::new(503, "store_unavailable", e.to_string()))?;
        let range = index.by_id.range::<str, _>((
            std::ops::Bound::Excluded(after.as_str()),
            std::ops::Bound::Unbounded,
        ));
        let mut page = Vec::new();
        let mut next = None;
        for (id, s) in range {
            let wanted = tenant.as_ref().is_none_or(|t| s.tenant.as_ref() == Some(t))
                && enabled.is_none_or(|e| s.enabled == e)
                && event_type
                    .as_ref()
                    .is_none_or(|t| s.event_types.iter().any(|p| pattern_matches(p, t)));
            if !wanted {
                continue;
            }
            if page.len() == limit {
                next = page.last().map(|(id, _): &(&String, Value)| (*id).clone());
                break;
            }
            page.push((id, subscription_view(s)));
        }
        let mut page: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
        // `?stats=true`: each one's delivery counts too (one store read each), for a health column.
        let stats = match param("stats").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(
                    ErrorResponse::new(400, "invalid_field", "stats is true or false")
                        .with_field("stats"),
                )
            }
        };
        if stats {
            for view in &mut page {
                let id = view["id"].as_str().unwrap_or_default().to_string();
                view["stats"] = self.subscriptions.stats(&id).await?;
            }
        }
        Ok((200, json!({ "subscriptions": page, "next": next })))
    }

    async fn show(&self, id: &str) -> Answer {
        let subscription = self.subscriptions.get(id).await?;
        let mut answer = subscription_view(&subscription);
        answer["stats"] = self.subscriptions.stats(id).await?;
        Ok((200, answer))
    }

    /// Sends a signed test event now (not queued, no retry): the receiver's status,
    /// latency and the start of its answer. The body may give `event_type` and `data`.
    async fn test(&self, id: &str, body: &[u8]) -> Answer {
        let subscription = self.subscriptions.get(id).await?;
        let given = if body.iter().all(u8::is_ascii_whitespace) {
            Default::default()
        } else {
            subscription_fields(body)?
        };
        if let Some(unknown) = given
            .keys()
            .find(|k| !["event_type", "data"].contains(&k.as_str()))
        {
            return Err(ErrorResponse::new(
                400,
                "unknown_field",
                format!("a test event has event_type and data, not {unknown:?}"),
            )
            .with_field(unknown.clone()));
        }
        let event_type = match given.get("event_type") {
            None | Some(Value::Null) => "hookgate.test".to_string(),
            Some(Value::String(name)) if crate::config::values::event_type(name).is_ok() => {
                name.clone()
            }
            Some(_) => {
                return Err(ErrorResponse::new(
                    400,
                    "invalid_event_type",
                    "event_type is 1 to 256 printable ASCII bytes, without spaces or *",
                )
                .with_field("event_type"))
            }
        };
        let data = given
            .get("data")
            .cloned()
            .unwrap_or_else(|| json!({ "message": "a test event sent by hookgate" }));
        let payload = json!({ "type": event_type, "subscription": id, "timestamp": unix_now(), "data": data });
        let payload = serde_json::to_vec(&payload).expect("JSON values always serialize");
        let endpoint = self
            .subscriptions
            .endpoint(&subscription, now_ms())
            .map_err(|e| ErrorResponse::new(409, "subscription_unusable", e))?;
        let record = Record::json(new_delivery_id(), SUBSCRIPTIONS_ENDPOINT, now_ms());
        let timeout = endpoint
            .config
            .policy
            .retry
            .timeout
            .min(Duration::from_secs(30));
        let outcome = endpoint
            .attempt(&self.connector, &record, &payload, timeout)
            .await;
        let attempt = outcome.attempt;
        Ok((
            200,
            json!({
                "delivery_id": record.id,
                "success": outcome.success,
                "status": attempt.status,
                "latency_ms": attempt.latency_ms,
                "response": attempt.response,
                "error": attempt.error,
            }),
        ))
    }

    /// Makes the subscription's dead deliveries (of the query's filter: `?since=` in unix
    /// ms...) due now.
    async fn replay(&self, id: &str, param: &Params<'_>) -> Answer {
        self.subscriptions.get(id).await?;
        let filter = DeliveryFilter {
            endpoint: Some(SUBSCRIPTIONS_ENDPOINT.to_string()),
            subscription: Some(id.to_string()),
            ..super::deliveries::filter(param)?
        };
        super::deliveries::replay(&*self.queue, &filter).await
    }
}

fn ok(value: Value) -> (u16, Value) {
    (200, value)
}
