//! `/portal/api/*`: what a tenant's token may do, and only to that tenant's own
//! subscriptions and deliveries. Each call is checked here and then handed to the same code
//! as the admin API's, with the tenant fixed: another tenant's ids answer 404, exactly as
//! ids that do not exist, and lists hold only the tenant's own.

use serde_json::{json, Map, Value};

use super::super::deliveries;
use super::super::jobs::Jobs;
use super::super::subscriptions::{Answer, Params, SubscriptionApi};
use crate::config::SUBSCRIPTIONS_ENDPOINT;
use crate::error_response::ErrorResponse;
use crate::outbound::facade::subscription_fields;
use crate::store::HistoryStore;

/// The fields a tenant may set on its subscriptions; the delivery policy (retry, limits),
/// the metadata and trace propagation stay the vendor's.
const TENANT_FIELDS: &[&str] = &[
    "tenant",
    "url",
    "event_types",
    "filters",
    "description",
    "enabled",
];
/// And on creating one: how it is signed.
const TENANT_CREATE_FIELDS: &[&str] = &["scheme", "algorithm", "secret"];

/// One tenant's view of the subscription API.
pub struct TenantApi<'a> {
    pub api: &'a SubscriptionApi,
    pub history: &'a dyn HistoryStore,
    pub jobs: &'a Jobs,
    pub tenant: &'a str,
}

fn subscription_not_found(id: &str) -> ErrorResponse {
    ErrorResponse::new(
        404,
        "subscription_not_found",
        format!("no subscription {id:?}"),
    )
}

fn tenant_mismatch() -> ErrorResponse {
    ErrorResponse::new(
        403,
        "tenant_mismatch",
        "a tenant's token acts for its own tenant only",
    )
    .with_field("tenant")
}

fn delivery_not_found() -> ErrorResponse {
    ErrorResponse::new(404, "delivery_not_found", "no such delivery")
}

impl TenantApi<'_> {
    /// The call `method` and `segments` (after `/portal/api/`) name.
    pub async fn handle(
        &self,
        method: &str,
        segments: &[&str],
        param: &Params<'_>,
        body: &[u8],
    ) -> Answer {
        match (method, segments) {
            ("GET", ["event-types"]) => Ok((200, self.api.endpoints.event_types())),
            ("GET", ["subscriptions"]) => {
                let param = |name: &str| match name {
                    "tenant" => Some(self.tenant.to_string()),
                    name => param(name),
                };
                self.subscriptions(method, segments, &param, body).await
            }
            ("POST", ["subscriptions"]) => {
                let body = self.own_fields(body, true)?;
                self.subscriptions(method, segments, param, &body).await
            }
            ("PATCH", ["subscriptions", id]) => {
                self.own_subscription(id).await?;
                let body = self.own_fields(body, false)?;
                self.subscriptions(method, segments, param, &body).await
            }
            ("GET" | "DELETE", ["subscriptions", id])
            | (
                "POST",
                ["subscriptions", id, "rotate-secret" | "test" | "enable" | "disable" | "replay"],
            ) => {
                self.own_subscription(id).await?;
                self.subscriptions(method, segments, param, body).await
            }
            ("GET", ["deliveries"]) => {
                let param = |name: &str| match name {
                    "tenant" => Some(self.tenant.to_string()),
                    "endpoint" => Some(SUBSCRIPTIONS_ENDPOINT.to_string()),
                    "route" => None,
                    name => param(name),
                };
                deliveries::list(&*self.api.queue, self.history, &param).await
            }
            ("POST", ["deliveries", "replay"]) => self.replay(body).await,
            ("GET", ["jobs"]) => Ok((200, json!({ "jobs": self.jobs.list(Some(self.tenant)) }))),
            ("GET", ["jobs", id]) | ("POST", ["jobs", id, "cancel"]) => {
                self.jobs.call(id, Some(self.tenant), method == "POST")
            }
            ("GET", ["deliveries", id]) => {
                let delivery = deliveries::show(&*self.api.queue, self.history, id)
                    .await
                    .map_err(unavailable)?
                    .filter(|d| d["event"]["tenant"] == self.tenant)
                    .ok_or_else(delivery_not_found)?;
                Ok((200, delivery))
            }
            ("POST", ["deliveries", id, "retry"]) => {
                let queue = &*self.api.queue;
                let record = queue.get(id).await.map_err(unavailable)?;
                let own = record.is_some_and(|r| {
                    r.event
                        .is_some_and(|e| e.tenant.as_deref() == Some(self.tenant))
                });
                if !own
                    || !queue
                        .retry_now(id, crate::clock::now_ms())
                        .await
                        .map_err(unavailable)?
                {
                    return Err(delivery_not_found());
                }
                Ok((200, json!({ "retried": true })))
            }
            _ => Err(ErrorResponse::new(
                404,
                "not_found",
                format!(
                    "{method} /portal/api/{} is not a portal API call",
                    segments.join("/")
                ),
            )),
        }
    }

    async fn subscriptions(
        &self,
        method: &str,
        segments: &[&str],
        param: &Params<'_>,
        body: &[u8],
    ) -> Answer {
        self.api
            .handle(method, segments, param, body)
            .await
            .unwrap_or_else(|| {
                Err(ErrorResponse::new(
                    404,
                    "not_found",
                    "not a portal API call",
                ))
            })
    }

    /// `id`, when it is one of this tenant's subscriptions.
    async fn own_subscription(&self, id: &str) -> Result<(), ErrorResponse> {
        let subscription = self
            .api
            .subscriptions
            .get(id)
            .await
            .map_err(|_| subscription_not_found(id))?;
        if subscription.tenant.as_deref() == Some(self.tenant) {
            Ok(())
        } else {
            Err(subscription_not_found(id))
        }
    }

    /// A subscription body with only the fields a tenant may set, its tenant filled in.
    fn own_fields(&self, body: &[u8], creating: bool) -> Result<Vec<u8>, ErrorResponse> {
        let mut fields = subscription_fields(body)?;
        self.check_fields(&fields, creating)?;
        fields.insert("tenant".into(), Value::String(self.tenant.to_string()));
        Ok(serde_json::to_vec(&fields).expect("JSON values always serialize"))
    }

    fn check_fields(
        &self,
        fields: &Map<String, Value>,
        creating: bool,
    ) -> Result<(), ErrorResponse> {
        for (key, value) in fields {
            let allowed = TENANT_FIELDS.contains(&key.as_str())
                || (creating && TENANT_CREATE_FIELDS.contains(&key.as_str()));
            if !allowed {
                return Err(ErrorResponse::new(
                    403,
                    "field_not_allowed",
                    format!("a tenant's token cannot set {key:?}"),
                )
                .with_field(key.clone()));
            }
            if key == "tenant" && value.as_str() != Some(self.tenant) {
                return Err(tenant_mismatch());
            }
        }
        Ok(())
    }

    /// `POST /portal/api/deliveries/replay {subscription, event_type, since, until, states}`:
    /// the admin API's replay, within this tenant's subscriptions' deliveries.
    async fn replay(&self, body: &[u8]) -> Answer {
        let mut fields = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            subscription_fields(body)?
        };
        for key in ["route", "endpoint", "all"] {
            if fields.contains_key(key) {
                return Err(ErrorResponse::new(
                    403,
                    "field_not_allowed",
                    format!("a tenant's token cannot set {key:?}"),
                )
                .with_field(key));
            }
        }
        if fields
            .get("tenant")
            .is_some_and(|t| t.as_str() != Some(self.tenant))
        {
            return Err(tenant_mismatch());
        }
        fields.insert("tenant".into(), json!(self.tenant));
        fields.insert("endpoint".into(), json!(SUBSCRIPTIONS_ENDPOINT));
        let body = serde_json::to_vec(&fields).expect("JSON values always serialize");
        deliveries::replay_request(&*self.api.queue, self.jobs, &|_| None, &body).await
    }
}

fn unavailable(e: crate::store::StoreError) -> ErrorResponse {
    ErrorResponse::new(503, "queue_unavailable", e.to_string())
}
