//! The last stage of a `deliver: queue` route, in place of [`forward`](super::forward):
//! the verified webhook is stored in the durable queue (the outbound side's, on the same
//! store), and only then acknowledged. A 2xx never answers a webhook that is not stored.
//! The delivery worker sends it to the app later, with retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::http::RequestHeader;
use tokio::sync::Notify;

use super::client::Client;
use super::dedupe::DeliveryGuard;
use super::forward::{upstream_request, Rewrite};
use super::{verify, InboundApp, Outcome};
use crate::clock::{now_ms, unix_now};
use crate::config::{OrderSource, QueuedRoute};
use crate::error_response::ErrorResponse;
use crate::ids::new_delivery_id;
use crate::schemes::crypto::sha256_hex;
use crate::store::queue::{next_order_seq, InboundRequest, Order, Queue, Record, State};
use crate::telemetry::Span;

/// How long a read of the queue's depth serves `queue.max_depth` checks (with what this
/// process stored since added), so a route at its limit costs one read per interval.
const DEPTH_READ_EVERY: Duration = Duration::from_millis(250);

/// The queue `deliver: queue` routes store into, and the worker's bell.
#[derive(Clone)]
pub struct QueueHandle {
    pub queue: Arc<dyn Queue>,
    pub wake: Arc<Notify>,
    /// The last depth read, for `queue.max_depth`.
    depths: Arc<Mutex<Depths>>,
}

/// Waiting webhooks per queue name as last read, plus those this process stored since.
#[derive(Default)]
struct Depths {
    read_at: Option<Instant>,
    waiting: HashMap<String, u64>,
}

impl QueueHandle {
    pub fn new(queue: Arc<dyn Queue>, wake: Arc<Notify>) -> Self {
        QueueHandle {
            queue,
            wake,
            depths: Arc::default(),
        }
    }

    /// Whether the route holds `queue.max_depth` waiting webhooks already.
    async fn full(&self, route: &QueuedRoute) -> Result<bool, ErrorResponse> {
        let Some(max) = route.max_depth else {
            return Ok(false);
        };
        let name = QueuedRoute::queue_name(&route.name);
        let stale = {
            let depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
            depths
                .read_at
                .is_none_or(|at| at.elapsed() >= DEPTH_READ_EVERY)
        };
        if stale {
            let read = self
                .queue
                .depth()
                .await
                .map_err(|e| unavailable(&route.name, &e))?;
            let mut depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
            depths.read_at = Some(Instant::now());
            depths.waiting = read
                .into_iter()
                .map(|d| (d.endpoint, d.pending + d.scheduled))
                .collect();
        }
        let depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
        Ok(depths.waiting.get(&name).copied().unwrap_or(0) >= max)
    }

    /// Counts a stored webhook until the next read of the depth.
    fn stored(&self, route: &QueuedRoute) {
        if route.max_depth.is_some() {
            let mut depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
            *depths
                .waiting
                .entry(QueuedRoute::queue_name(&route.name))
                .or_default() += 1;
        }
    }

    /// Stores the request as the app will get it; its delivery id once it is durable.
    pub async fn store(
        &self,
        route: &QueuedRoute,
        header: &RequestHeader,
        body: &Bytes,
        rewrite: &Rewrite<'_>,
        trace: Option<String>,
    ) -> Result<String, ErrorResponse> {
        let headers = app_headers(header, body, rewrite).map_err(|why| {
            ErrorResponse::new(
                400,
                "bad_request",
                format!("request cannot be forwarded: {why}"),
            )
        })?;
        if self.full(route).await? {
            tracing::warn!(route = %route.name, "the route's queue is at its max_depth; answered 503");
            return Err(ErrorResponse::new(
                503,
                "queue_unavailable",
                "the route's queue is full (queue.max_depth); send it again later",
            )
            .with_header("Retry-After", "5"));
        }
        let order = order_of(route, header, body)?;
        let id = new_delivery_id();
        let now = now_ms();
        let record = Record {
            id: id.clone(),
            endpoint: QueuedRoute::queue_name(&route.name),
            timestamp: unix_now(),
            content_type: header
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            created_ms: now,
            state: State::Pending,
            due_ms: now,
            round_attempts: 0,
            attempts: Vec::new(),
            target: None,
            event: None,
            trace,
            inbound: Some(InboundRequest {
                route: route.name.clone(),
                method: header.method.as_str().to_string(),
                target: header
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string(),
                headers,
            }),
            order,
            idempotency_key: None,
        };
        match self.queue.enqueue(record, body.clone(), None).await {
            Ok(_) => {
                self.stored(route);
                self.wake.notify_one();
                Ok(id)
            }
            Err(e) => Err(unavailable(&route.name, &e)),
        }
    }
}

/// A webhook's place in its route's `queue.order` line: none when the route has no order
/// or the webhook has no value for its key (absent or `null`: it is then delivered as
/// soon as it can be). A key that is there but cannot be read is refused, as dedupe's id.
fn order_of(
    route: &QueuedRoute,
    header: &RequestHeader,
    body: &[u8],
) -> Result<Option<Order>, ErrorResponse> {
    let refuse = |why: String| ErrorResponse::new(400, "invalid_order_key", why);
    let value = match route.order.as_ref() {
        None => return Ok(None),
        Some(OrderSource::Route) => String::new(),
        Some(OrderSource::Header(name)) => {
            let mut values = header.headers.get_all(name).iter();
            let Some(value) = values.next() else {
                return Ok(None);
            };
            if values.next().is_some() {
                return Err(refuse(format!("{name} appears more than once")));
            }
            match value.to_str() {
                Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
                _ => return Err(refuse(format!("{name} is empty or not ASCII text"))),
            }
        }
        Some(OrderSource::Json(pointer)) => {
            let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                refuse(format!(
                    "the body is not JSON ({e}), so {pointer} cannot be read"
                ))
            })?;
            match json.pointer(pointer) {
                None | Some(serde_json::Value::Null) => return Ok(None),
                Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                Some(_) => {
                    return Err(refuse(format!(
                        "{pointer} is empty, an object or a list, not a key"
                    )))
                }
            }
        }
    };
    // Long values are hashed: a line's key stays short in the store.
    let value = if value.len() > 128 {
        sha256_hex(value.as_bytes())
    } else {
        value
    };
    Ok(Some(Order {
        key: format!("{}\n{value}", QueuedRoute::queue_name(&route.name)),
        seq: next_order_seq(),
    }))
}

/// The answer when the queue cannot be read or written: the provider retries later.
fn unavailable(route: &str, error: &crate::store::StoreError) -> ErrorResponse {
    tracing::error!(route, error = %error, "could not store a verified webhook; answered 503");
    ErrorResponse::new(
        503,
        "queue_unavailable",
        "the webhook could not be stored; send it again later",
    )
    .with_header("Retry-After", "5")
}

/// The headers the app gets, as proxy mode would send them (the same rewrite: hop-by-hop
/// fields removed, credentials stripped, `X-Forwarded-*` and `Hookgate-*` set), without
/// the framing, which each attempt sets anew.
fn app_headers(
    header: &RequestHeader,
    body: &[u8],
    rewrite: &Rewrite,
) -> Result<Vec<(String, String)>, &'static str> {
    let wire = upstream_request(header, body, rewrite)?;
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(&wire) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("its head cannot be stored"),
    }
    Ok(parsed
        .headers
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect())
}

/// A verified webhook on its way into the queue.
pub(super) struct Stored<'a> {
    pub name: &'static str,
    pub route: &'a QueuedRoute,
    pub allow_underscores: bool,
    pub passed: &'a verify::Passed,
    pub body: &'a bytes::Bytes,
}

impl InboundApp {
    /// Stores a verified webhook for the worker to deliver, then acknowledges it; a
    /// dedupe claim is finished once it is stored (a provider's retry is a duplicate).
    pub(super) async fn enqueue(
        &self,
        client: &mut Client<'_>,
        stored: Stored<'_>,
        guard: Option<DeliveryGuard>,
        rate_headers: Vec<(&'static str, String)>,
        trace: &mut Option<Span>,
    ) -> Outcome {
        let name = stored.name;
        let added = [
            ("Hookgate-Route", stored.route.name.as_str()),
            ("Hookgate-Verified", stored.passed.scheme.as_str()),
        ];
        let rewrite = Rewrite {
            forwarded_for: client.client_ip_text(),
            tls: self.config.tls.is_some(),
            strip: stored.passed.strip,
            add: &added,
            traceparent: None,
            allow_underscores: stored.allow_underscores,
        };
        let traceparent = trace.as_ref().map(|s| s.context().traceparent());
        let queue = self
            .queue
            .as_ref()
            .expect("checked when the routes were built");
        let result = queue
            .store(
                stored.route,
                client.req_header(),
                stored.body,
                &rewrite,
                traceparent,
            )
            .await;
        let id = match result {
            Ok(id) => id,
            Err(mut answer) => {
                if let Some(mut guard) = guard {
                    guard.release().await;
                }
                answer.headers.extend(rate_headers);
                return self.answer(client, name, answer, true).await;
            }
        };
        if let Some(guard) = guard {
            guard.finish(Some(stored.route.ack_status)).await;
        }
        if let Some(span) = trace {
            span.set("hookgate.delivery_id", id.clone());
        }
        let body = serde_json::json!({"queued": true, "delivery_id": id}).to_string();
        let mut fields = vec![
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
        ];
        fields.extend(rate_headers.iter().map(|(n, v)| (*n, v.as_str())));
        let status = stored.route.ack_status;
        let written = client.respond(status, &fields, body.as_bytes(), true).await;
        Outcome {
            route: name,
            outcome: "queued",
            status,
            reusable: written.is_ok(),
        }
    }
}
