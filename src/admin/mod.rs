//! The admin port: `/healthz` (alive), `/readyz` (ready to take traffic), `/metrics`,
//! and with `admin.token` the admin API: deliveries, endpoints, the queue, and
//! subscriptions ([`subscriptions`]).

pub mod console;
pub mod deliveries;
pub mod jobs;
pub(crate) mod openapi;
pub mod overview;
mod page;
pub mod portal;
pub mod reload;
pub mod routes;
mod store_keys;
pub mod subscriptions;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;
use serde_json::json;

use crate::clock::now_ms;
use crate::config::{AdminConfig, Secret, DYNAMIC_ENDPOINT};
use crate::error_response::{json_response, ErrorResponse};
use crate::http_io::read_body;
use crate::metrics::METRICS;
use crate::outbound::facade::Endpoints;
use crate::recent::RecentRefusals;
use crate::schemes::crypto::ct_eq;
use crate::store::queue::{DeliveryFilter, EndpointState, Queue};
use crate::store::reseal::Resealer;
use crate::store::HistoryStore;
use crate::store::Store;

/// What `/readyz` checks.
pub struct Readiness {
    /// Listeners that must accept connections (inbound, outbound).
    pub listeners: Vec<(&'static str, SocketAddr)>,
    /// Usable when [`Store::check`] says so.
    pub store: Store,
}

pub struct AdminApp {
    pub readiness: Readiness,
    /// The outbound queue, and the delivery history, for `/admin/deliveries`.
    pub deliveries: Option<(Arc<dyn Queue>, Arc<dyn HistoryStore>)>,
    /// Bulk replays under way and lately ended (`/admin/jobs`), with an outbound side.
    pub jobs: Option<Arc<jobs::Jobs>>,
    /// Seals the store anew on demand (`/admin/store/rotate-key`).
    pub resealer: Arc<Resealer>,
    /// Bearer token for `/admin/*`; without one the admin API is off.
    pub token: Option<Secret>,
    /// The configured outbound endpoints (as the config, reloaded or not, says).
    pub endpoints: Option<Endpoints>,
    /// `/admin/subscriptions`, with an outbound side.
    pub subscriptions: Option<Arc<subscriptions::SubscriptionApi>>,
    /// `/portal/` and the tenants' tokens, with `admin.portal`.
    pub portal: Option<Arc<portal::Portal>>,
    /// The last inbound refusals, for `/admin/refusals`.
    pub refusals: Arc<RecentRefusals>,
    /// Counts over the last minute and hour, for `/admin/overview`.
    pub overview: Arc<overview::Overview>,
    /// `POST /admin/reload`, when hookgate runs from a config file.
    pub reload: Option<Arc<dyn reload::ConfigReload>>,
}

/// The largest body an admin API call may send (a subscription with its metadata).
const MAX_ADMIN_BODY: u64 = 256 * 1024;

/// The admin service on one thread of its own, so it answers while the other services are
/// saturated.
pub fn service(config: &AdminConfig, app: AdminApp) -> Service<HttpServer<AdminApp>> {
    let mut admin = Service::new("admin".to_string(), HttpServer::new_app(app));
    admin.add_tcp(&config.listen.to_string());
    admin.threads = Some(1);
    admin
}

impl Readiness {
    async fn check(&self) -> Vec<(&'static str, Result<(), String>)> {
        let mut results = Vec::new();
        for (name, addr) in &self.listeners {
            results.push((*name, listener_accepts(*addr).await));
        }
        let store = self.store.check().await;
        results.push(("store", store));
        results
    }
}

/// A bound listener accepts a TCP connection; this catches a listener Pingora failed to bind.
async fn listener_accepts(addr: SocketAddr) -> Result<(), String> {
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    match tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(target),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr} is not accepting connections: {e}")),
        Err(_) => Err(format!("{addr} did not accept a connection within 500ms")),
    }
}

/// Whether `name` is a per-request destination's id (`dynamic:<hash of its URL>`).
fn is_destination(name: &str) -> bool {
    name.strip_prefix(DYNAMIC_ENDPOINT)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An API call's query parameters; one given with no value is refused (leave it out to
/// mean "any"), but for `after`, where empty is the first page.
fn query_params(
    header: &pingora::http::RequestHeader,
) -> Result<Vec<(String, String)>, ErrorResponse> {
    let query: Vec<(String, String)> = header
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    match query
        .iter()
        .find(|(name, value)| value.is_empty() && name != "after")
    {
        Some((name, _)) => Err(ErrorResponse::new(
            400,
            "bad_request",
            format!("{name} is given without a value: leave it out to mean any"),
        )
        .with_field(name.clone())),
        None => Ok(query),
    }
}

/// A call's path segments, each percent-decoded: a client may send the `:` of a tenant
/// or an id as `%3A`.
fn path_segments(call: &str) -> Vec<String> {
    call.split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

fn api_error(status: u16, code: &'static str, message: impl Into<String>) -> Response<Vec<u8>> {
    ErrorResponse::new(status, code, message).to_response()
}

impl AdminApp {
    /// The configured outbound endpoints' names, as the running config says.
    fn endpoint_names(&self) -> Vec<String> {
        self.endpoints
            .as_ref()
            .map_or_else(Vec::new, Endpoints::names)
    }

    /// Where a delivery goes, for its page: a name (an endpoint's, a per-request
    /// destination's `dynamic:<16 hex>`, or a subscription's id) and its URL without
    /// credentials or query.
    async fn destination(&self, delivery: &serde_json::Value) -> serde_json::Value {
        let endpoint = delivery["endpoint"].as_str().unwrap_or_default();
        let url = if delivery["destination"].is_object() {
            return delivery["destination"].clone(); // a per-request destination's, shown already
        } else if let Some(id) = delivery["event"]["subscription"].as_str() {
            match &self.subscriptions {
                Some(api) => api
                    .subscriptions
                    .get(id)
                    .await
                    .ok()
                    .map(|s| (id.to_string(), s.url.clone())),
                None => None,
            }
        } else {
            let url = self.endpoints.as_ref().and_then(|e| e.url(endpoint));
            url.map(|url| (endpoint.to_string(), url))
        };
        match url {
            Some((name, url)) => {
                json!({ "name": name, "url": crate::config::values::display_url(&url) })
            }
            None => json!({ "name": endpoint }),
        }
    }

    /// `/admin/routes` (`None`), or a route's pause or resume.
    async fn routes_call(
        &self,
        queue: &dyn Queue,
        pause: Option<(&str, bool)>,
    ) -> Result<(u16, serde_json::Value), ErrorResponse> {
        let Some(endpoints) = &self.endpoints else {
            return Ok((200, json!({ "routes": [] })));
        };
        let answer = match pause {
            None => routes::list(queue, endpoints).await,
            Some((name, paused)) => routes::pause(queue, endpoints, name, paused).await,
        };
        answer.map(|body| (200, body))
    }

    fn has_endpoint(&self, name: &str) -> bool {
        self.endpoint_names().iter().any(|e| e == name)
    }

    /// `GET /admin/overview`: inbound counts per route, outbound deliveries and the queue,
    /// open circuits, disabled endpoints and subscriptions, and the last hour per minute.
    async fn overview_api(&self) -> Response<Vec<u8>> {
        let mut report = self.overview.report();
        if let Some((queue, _)) = &self.deliveries {
            let (depths, states) = match (queue.depth().await, queue.endpoint_states().await) {
                (Ok(depths), Ok(states)) => (depths, states),
                (Err(e), _) | (_, Err(e)) => {
                    return api_error(503, "queue_unavailable", e.to_string())
                }
            };
            let mut totals = json!({ "pending": 0, "scheduled": 0, "dead": 0 });
            for depth in &depths {
                for bucket in crate::store::queue::Bucket::ALL {
                    let total = &mut totals[bucket.as_str()];
                    *total = json!(total.as_u64().unwrap_or(0) + depth.count(bucket));
                }
            }
            let disabled: Vec<_> = states
                .iter()
                .filter(|(name, s)| !s.enabled && !name.starts_with("route:"))
                .map(
                    |(name, s)| json!({ "name": name, "reason": s.reason, "since_ms": s.since_ms }),
                )
                .collect();
            let circuits: Vec<_> = states
                .iter()
                .filter(|(_, s)| s.paused_until_ms.is_some_and(|until| until > now_ms()))
                .map(|(name, s)| json!({ "name": name, "reason": s.reason, "until_ms": s.paused_until_ms }))
                .collect();
            report["outbound"]["queue"] = totals;
            report["outbound"]["endpoints"] = json!(depths);
            report["outbound"]["disabled_endpoints"] = json!(disabled);
            report["outbound"]["open_circuits"] = json!(circuits);
            report["paused_routes"] = json!(routes::paused(&**queue).await);
        }
        if let Some(api) = &self.subscriptions {
            if let Ok(index) = api.subscriptions.index().await {
                let disabled: Vec<_> = index
                    .by_id
                    .values()
                    .filter(|s| !s.enabled)
                    .map(|s| json!({ "id": s.id, "reason": s.disabled_reason }))
                    .collect();
                report["outbound"]["subscriptions"] = json!(index.by_id.len());
                report["outbound"]["disabled_subscriptions"] = json!(disabled);
            }
        }
        json_response(200, report)
    }

    /// `POST /admin/reload[?allow_weaker=true]`: the config file read now, as `SIGHUP` does.
    async fn reload_api(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let _ = session.drain_request_body().await;
        let Some(reload) = &self.reload else {
            return api_error(
                404,
                "reload_unavailable",
                "this hookgate was not started from a config file",
            );
        };
        let query = match query_params(session.req_header()) {
            Ok(query) => query,
            Err(e) => return e.to_response(),
        };
        let allow_weaker = match query
            .iter()
            .find(|(k, _)| k == "allow_weaker")
            .map(|(_, v)| v.as_str())
        {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return api_error(
                    400,
                    "bad_request",
                    format!("allow_weaker is true or false, not {other:?}"),
                )
            }
        };
        let (status, body) = reload.reload_now(allow_weaker).await.answer();
        json_response(status, body)
    }

    /// `GET /admin/refusals[?route=&reason=&limit=]`: the last inbound refusals, newest first.
    fn refusals_api(&self, session: &ServerSession) -> Response<Vec<u8>> {
        let header = session.req_header();
        let query = match query_params(header) {
            Ok(query) => query,
            Err(e) => return e.to_response(),
        };
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let limit = match param("limit").map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) if (1..=10_000).contains(&n) => n,
            Some(_) => {
                return ErrorResponse::new(
                    400,
                    "invalid_limit",
                    "limit is a whole number from 1 to 10000",
                )
                .with_field("limit")
                .to_response()
            }
        };
        let list = self.refusals.list(param("route"), param("reason"), limit);
        json_response(
            200,
            json!({ "refusals": list, "kept": self.refusals.capacity() }),
        )
    }

    /// `/admin/deliveries[?endpoint=&state=]`, `/admin/deliveries/{id}`, `POST /admin/deliveries/{id}/retry`.
    async fn admin_api(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // A method the path does not take, as the contract says (which names no secret).
        let header = session.req_header();
        if let Some(wrong) = openapi::method_not_allowed(header.method.as_str(), header.uri.path())
        {
            let _ = session.drain_request_body().await;
            return wrong.to_response();
        }
        // The contract is public: it holds no secret, and tools fetch it before they have one.
        if session.req_header().uri.path() == "/admin/openapi.json" {
            let _ = session.drain_request_body().await;
            return openapi::document();
        }
        let Some(token) = &self.token else {
            return api_error(
                403,
                "admin_api_disabled",
                "set admin.token to use the admin API",
            );
        };
        let header = session.req_header();
        let presented = header
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !ct_eq(presented.as_bytes(), token.expose().as_bytes()) {
            return api_error(
                401,
                "unauthorized",
                "send Authorization: Bearer <admin.token>",
            );
        }
        match session.req_header().uri.path() {
            "/admin/refusals" => return self.refusals_api(session),
            "/admin/overview" => return self.overview_api().await,
            "/admin/reload" => return self.reload_api(session).await,
            "/admin/store/rotate-key" => {
                return store_keys::rotate_key_api(&self.resealer, session).await
            }
            _ => {}
        }
        let Some((queue, history)) = self.deliveries.clone() else {
            return api_error(
                404,
                "outbound_not_configured",
                "there is no outbound side in this config",
            );
        };
        let body = match read_body(session, MAX_ADMIN_BODY, Duration::from_secs(10)).await {
            Ok(body) => body,
            Err(e) => return e.to_response(),
        };
        let header = session.req_header();
        let path = header.uri.path().to_string();
        let query = match query_params(header) {
            Ok(query) => query,
            Err(e) => return e.to_response(),
        };
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let segments = path_segments(path.trim_start_matches("/admin/"));
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = header.method.clone();
        let portal_call = match (method.as_str(), segments.as_slice()) {
            ("POST", ["tenants", tenant, "portal"]) => Some((*tenant, false)),
            ("POST", ["tenants", tenant, "portal", "revoke"]) => Some((*tenant, true)),
            _ => None,
        };
        if let Some((tenant, revoke)) = portal_call {
            let answer = match (&self.portal, revoke) {
                (None, _) => Err(ErrorResponse::new(
                    404,
                    "portal_not_configured",
                    "set admin.portal.signing_key to issue portal tokens",
                )),
                (Some(portal), false) => portal.issue(tenant, &body).await,
                (Some(portal), true) => portal.revoke(tenant).await,
            };
            return match answer {
                Ok((status, body)) => json_response(status, body),
                Err(e) => e.to_response(),
            };
        }
        if let Some(api) = &self.subscriptions {
            if let Some(answer) = api.handle(method.as_str(), &segments, &param, &body).await {
                return match answer {
                    Ok((status, body)) => json_response(status, body),
                    Err(e) => e.to_response(),
                };
            }
        }
        let delivery_call = match (method.as_str(), segments.as_slice()) {
            ("GET", ["deliveries"]) => Some(deliveries::list(&*queue, &*history, &param).await),
            ("DELETE", ["deliveries"]) => Some(deliveries::purge(&*queue, &param).await),
            ("POST", ["deliveries", "replay"]) => match &self.jobs {
                Some(jobs) => Some(deliveries::replay_request(&*queue, jobs, &param, &body).await),
                None => None,
            },
            ("GET", ["jobs"]) => self
                .jobs
                .as_ref()
                .map(|jobs| Ok((200, json!({ "jobs": jobs.list(None) })))),
            ("GET", ["jobs", id]) => self.jobs.as_ref().map(|jobs| jobs.call(id, None, false)),
            ("POST", ["jobs", id, "cancel"]) => {
                self.jobs.as_ref().map(|jobs| jobs.call(id, None, true))
            }
            ("POST", ["endpoints", name, "replay"]) if self.has_endpoint(name) => {
                Some(match deliveries::filter(&param) {
                    Ok(filter) => {
                        let filter = DeliveryFilter {
                            endpoint: Some(name.to_string()),
                            ..filter
                        };
                        deliveries::replay(&*queue, &filter).await
                    }
                    Err(e) => Err(e),
                })
            }
            ("GET", ["event-types"]) => Some(Ok((
                200,
                self.endpoints
                    .as_ref()
                    .map_or_else(|| json!({ "event_types": [] }), Endpoints::event_types),
            ))),
            ("GET", ["routes"]) => Some(self.routes_call(&*queue, None).await),
            ("POST", ["routes", name, action @ ("pause" | "resume")]) => Some(
                self.routes_call(&*queue, Some((name, *action == "pause")))
                    .await,
            ),
            _ => None,
        };
        if let Some(answer) = delivery_call {
            return match answer {
                Ok((status, body)) => json_response(status, body),
                Err(e) => e.to_response(),
            };
        }
        let result = match (method.as_str(), segments.as_slice()) {
            ("GET", ["deliveries", id]) => match deliveries::show(&*queue, &*history, id).await {
                Ok(Some(mut delivery)) => {
                    delivery["destination"] = self.destination(&delivery).await;
                    Ok(Some(delivery))
                }
                other => other,
            },
            ("POST", ["deliveries", id, "retry"]) => queue
                .retry_now(id, now_ms())
                .await
                .map(|found| found.then(|| json!({ "retried": true }))),
            ("GET", ["endpoints"]) => {
                queue.endpoint_states().await.map(|states| {
                    let show = |name: &str, state: Option<&EndpointState>| match state {
                        Some(state) => json!({ "name": name, "enabled": state.enabled, "reason": state.reason, "since_ms": state.since_ms, "paused_until_ms": state.paused_until_ms.filter(|until| *until > now_ms()) }),
                        None => json!({ "name": name, "enabled": true }),
                    };
                    let health = |name: &str| self.endpoints.as_ref().and_then(|e| e.health(name, now_ms()));
                    let mut list: Vec<_> = self
                        .endpoint_names()
                        .iter()
                        .map(|name| {
                            let mut shown = show(name, states.iter().find(|(n, _)| n == name).map(|(_, s)| s));
                            shown["health"] = json!(health(name));
                            shown
                        })
                        .collect();
                    // Per-request destinations have a state once a 410 (or an operator)
                    // disabled one.
                    list.extend(
                        states
                            .iter()
                            .filter(|(name, _)| is_destination(name))
                            .map(|(name, state)| show(name, Some(state))),
                    );
                    Some(json!({ "endpoints": list }))
                })
            }
            ("GET", ["queue"]) => queue
                .depth()
                .await
                .map(|depths| Some(json!({ "endpoints": depths }))),
            ("POST", ["endpoints", name, action @ ("enable" | "disable")]) => {
                if !self.has_endpoint(name) && !is_destination(name) {
                    return api_error(
                        404,
                        "endpoint_not_found",
                        format!("no endpoint is named {name:?}"),
                    );
                }
                let state = EndpointState {
                    enabled: *action == "enable",
                    reason: format!("{action}d through the admin API"),
                    since_ms: now_ms(),
                    paused_until_ms: None,
                };
                let set = queue.set_endpoint_state(name, &state).await;
                if set.is_ok() && !state.enabled {
                    if let Some(api) = &self.subscriptions {
                        api.subscriptions
                            .notices()
                            .endpoint_disabled(name, &state.reason);
                    }
                }
                set.map(|_| {
                    let mut answer = json!(state);
                    answer["name"] = json!(name);
                    Some(answer)
                })
            }
            ("POST", ["endpoints", name, "replay"]) => {
                return api_error(
                    404,
                    "endpoint_not_found",
                    format!("no endpoint is named {name:?}"),
                );
            }
            _ => {
                return api_error(
                    404,
                    "not_found",
                    format!("{method} {path} is not an admin API call"),
                )
            }
        };
        // `None`: the delivery named in the path does not exist.
        match result {
            Ok(None) => api_error(404, "delivery_not_found", "no such delivery"),
            Ok(Some(body)) => json_response(200, body),
            Err(e) => api_error(503, "queue_unavailable", e.to_string()),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        if path.starts_with("/admin/") {
            return self.admin_api(session).await;
        }
        // Health, metrics and pages take what the document says; the pages' files, GET.
        let method = session.req_header().method.clone();
        let file = path == "/portal" || path.starts_with("/ui/") || path.starts_with("/portal/");
        let wrong = openapi::method_not_allowed(method.as_str(), &path)
            .or_else(|| openapi::not_a_read(method.as_str()).filter(|_| file));
        if let Some(wrong) = wrong.filter(|_| !path.starts_with("/portal/api/")) {
            let _ = session.drain_request_body().await;
            return wrong.to_response();
        }
        if path == "/portal" || path.starts_with("/portal/") {
            if let Some(portal) = &self.portal {
                return portal.serve(session).await;
            }
            let _ = session.drain_request_body().await;
            return api_error(
                404,
                "portal_not_configured",
                "set admin.portal.signing_key to serve the portal",
            );
        }
        if let Some(page) = console::asset(&path) {
            let _ = session.drain_request_body().await;
            return page;
        }
        // Only the admin API reads a body; drain so the connection can be reused.
        let _ = session.drain_request_body().await;
        match path.as_str() {
            "/healthz" | "/livez" => json_response(200, json!({ "status": "ok" })),
            "/readyz" => {
                let results = self.readiness.check().await;
                let ready = results.iter().all(|(_, r)| r.is_ok());
                let checks: serde_json::Map<String, serde_json::Value> = results
                    .into_iter()
                    .map(|(name, r)| {
                        (
                            name.to_string(),
                            json!(r.err().unwrap_or_else(|| "ok".to_string())),
                        )
                    })
                    .collect();
                let status = if ready { "ready" } else { "not_ready" };
                let mut report = json!({ "status": status, "checks": checks });
                // Paused routes take traffic (they store it): shown, not a failed check.
                if let Some((queue, _)) = &self.deliveries {
                    let paused = routes::paused(&**queue).await;
                    if !paused.is_empty() {
                        report["paused_routes"] = json!(paused);
                    }
                }
                json_response(if ready { 200 } else { 503 }, report)
            }
            "/metrics" => {
                let body = METRICS.render().into_bytes();
                Response::builder()
                    .status(200)
                    .header(
                        "Content-Type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .header("Content-Length", body.len())
                    .body(body)
                    .expect("static response parts are valid")
            }
            path => json_response(
                404,
                json!({ "error": "not_found", "message": format!("{path} is not an admin endpoint (try /healthz, /readyz, /metrics)") }),
            ),
        }
    }
}
