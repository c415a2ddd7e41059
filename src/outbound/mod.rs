//! The outbound side: an app posts plain JSON to `http://<outbound.listen>/<endpoint>`;
//! hookgate stores it durably, answers `202 {"delivery_id": ...}`, then signs and
//! delivers it with retries ([`worker`]), keeping dead letters for replay. Endpoints in
//! `mode: sync` are delivered while the app waits instead ([`sync`]).

pub mod catalog;
pub mod deliver;
pub mod destinations;
mod egress_proxy;
mod egress_tls;
mod events;
pub mod facade;
pub mod history;
pub mod live;
mod oauth2;
pub mod operational;
mod outcome;
pub mod pacing;
mod receiver_auth;
pub mod retry;
mod sealing;
pub mod service;
pub mod ssrf;
pub mod subscriptions;
pub mod sync;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::clock::{now_ms, unix_now};
use crate::config::Cidr;
use crate::config::{parse_destination, DeliveryMode, DYNAMIC_ENDPOINT, EVENTS_PATH};
use crate::error_response::{json_response, ErrorResponse};
use crate::header_text::header_or_400;
use crate::http_io::read_body;
use crate::ids::new_delivery_id;
use crate::schemes::crypto::sha256_hex;
use crate::schemes::{self, SchemeSpec};
use crate::store::queue::{Enqueued, Queue, Record, State, Target};
use crate::telemetry::{self, Span, SpanKind};
use deliver::Endpoint;

/// The listener the app posts to.
pub struct OutboundApp {
    pub queue: Arc<dyn Queue>,
    /// The endpoints, secrets and limits, shared with the worker and replaced by a reload.
    pub live: live::LiveOutbound,
    /// The SSRF guard's exceptions for per-request destinations.
    pub allow: Vec<Cidr>,
    /// Sync deliveries' connection pool.
    pub connector: pingora::connectors::http::Connector,
    /// Multiplies retry delays (tests run schedules fast), as in the worker.
    pub time_scale: f64,
    /// Wakes the delivery worker once a message is stored.
    pub wake: Arc<tokio::sync::Notify>,
    /// For `POST /events`: the subscriptions events fan out to.
    pub subscriptions: Arc<subscriptions::Subscriptions>,
}

/// How long an `Idempotency-Key` dedupes enqueues.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Forward-proxy mode: whether `url` matches an endpoint's `match`, a URL prefix ending
/// in `*` or an exact URL.
fn matches_url(endpoint: &Endpoint, url: &str) -> bool {
    match endpoint.config.url_match.as_deref() {
        Some(pattern) => match pattern.strip_suffix('*') {
            Some(prefix) => url.starts_with(prefix),
            None => url == pattern,
        },
        None => false,
    }
}

/// A message read from the app, not yet stored or delivered.
struct Message {
    record: Record,
    body: bytes::Bytes,
    /// `Idempotency-Key`, scoped to the endpoint.
    idempotency_key: Option<String>,
    /// The configured endpoint, when the message is not for a per-request destination.
    endpoint: Option<Arc<Endpoint>>,
}

impl OutboundApp {
    /// The endpoint a request is for: an absolute URL (the app uses hookgate as its
    /// HTTP_PROXY) matches an endpoint's `match`; otherwise the path names it.
    fn endpoint_for(
        &self,
        header: &pingora::http::RequestHeader,
    ) -> Result<Arc<Endpoint>, ErrorResponse> {
        // Pingora keeps an absolute-form target only in the raw request line.
        let target = String::from_utf8_lossy(header.raw_path());
        if target.starts_with("http://") || target.starts_with("https://") {
            let url = target.into_owned();
            return self
                .live
                .load()
                .endpoints
                .iter()
                .find(|e| matches_url(e, &url))
                .cloned()
                .ok_or_else(|| {
                    ErrorResponse::new(
                        404,
                        "endpoint_not_found",
                        format!("no endpoint matches {url}"),
                    )
                });
        }
        let name = header.uri.path().trim_start_matches('/');
        self.live
            .load()
            .endpoints
            .iter()
            .find(|e| e.config.name == name)
            .cloned()
            .ok_or_else(|| {
                ErrorResponse::new(
                    404,
                    "endpoint_not_found",
                    format!("no endpoint is named {name:?}"),
                )
            })
    }

    /// A per-request destination from `Hookgate-Destination`, `Hookgate-Scheme` and
    /// `Hookgate-Secret` or `Hookgate-Secret-Ref`; checked now, so a bad one gets a 400.
    async fn target(
        &self,
        header: &pingora::http::RequestHeader,
        url: &str,
    ) -> Result<Target, ErrorResponse> {
        let bad = |code: &'static str, message: String| ErrorResponse::new(400, code, message);
        let value = |name: &str, code| {
            header_or_400(&header.headers, name, code).map(|v| v.map(str::to_string))
        };
        let destination = parse_destination(url)
            .map_err(|e| bad("bad_destination", format!("Hookgate-Destination: {e}")))?;
        let scheme = value("hookgate-scheme", "bad_scheme")?
            .unwrap_or_else(|| "standard-webhooks".to_string());
        let signer = match schemes::build(&SchemeSpec::Named(scheme.clone())) {
            Ok(signer) if scheme != "hmac" => signer,
            _ => {
                return Err(bad(
                    "bad_scheme",
                    format!("Hookgate-Scheme: {scheme:?} is not a named scheme"),
                ))
            }
        };
        let secrets = (
            value("hookgate-secret", "bad_secret")?,
            value("hookgate-secret-ref", "bad_secret")?,
        );
        let (secret, secret_ref) = match secrets {
            (Some(secret), _) => {
                signer
                    .key(&secret)
                    .map_err(|e| bad("bad_secret", format!("Hookgate-Secret: {e}")))?;
                (Some(secret), None)
            }
            (None, Some(name)) => match self.live.load().secrets.get(&name) {
                Some(secret) => {
                    signer.key(secret).map_err(|e| {
                        bad(
                            "bad_secret",
                            format!("outbound.secrets.{name} for {scheme}: {e}"),
                        )
                    })?;
                    (None, Some(name))
                }
                None => {
                    return Err(bad(
                        "unknown_secret_ref",
                        format!("no secret {name:?} in outbound.secrets"),
                    ))
                }
            },
            (None, None) => {
                return Err(bad(
                    "missing_secret",
                    "send Hookgate-Secret or Hookgate-Secret-Ref".into(),
                ))
            }
        };
        ssrf::check_host(&destination.host, destination.port, &self.allow)
            .await
            .map_err(|e| bad("destination_not_allowed", e))?;
        Ok(Target {
            url: url.to_string(),
            scheme,
            secret,
            secret_ref,
        })
    }

    /// `POST /events`, unless the request names a per-request destination or an absolute
    /// URL (a forward-proxied message), which keep their meaning on any path.
    fn is_publish(&self, header: &pingora::http::RequestHeader) -> bool {
        header.raw_path().starts_with(b"/")
            && header.uri.path().trim_start_matches('/') == EVENTS_PATH
            && !header.headers.contains_key("hookgate-destination")
    }

    /// Reads an event and publishes it.
    async fn read_event(
        &self,
        session: &mut ServerSession,
        trace: Option<&mut Span>,
    ) -> Result<(serde_json::Value, bool), ErrorResponse> {
        if session.req_header().method != http::Method::POST {
            return Err(
                ErrorResponse::new(405, "method_not_allowed", "post the event to /events")
                    .with_header("Allow", "POST"),
            );
        }
        let max_body = self.live.load().max_body;
        let body = read_body(session, max_body, Duration::from_secs(30)).await?;
        self.publish(session.req_header(), body, trace).await
    }

    /// Reads the app's request into a message with a fresh delivery id and timestamp.
    async fn read_message(
        &self,
        session: &mut ServerSession,
        trace: Option<&mut Span>,
    ) -> Result<Message, ErrorResponse> {
        let header = session.req_header();
        if header.method != http::Method::POST {
            return Err(ErrorResponse::new(
                405,
                "method_not_allowed",
                "post the message body to /<endpoint>",
            )
            .with_header("Allow", "POST"));
        }
        let destination =
            header_or_400(&header.headers, "hookgate-destination", "bad_destination")?
                .map(str::to_string);
        let (endpoint, target) = match destination {
            Some(url) => (None, Some(self.target(header, &url).await?)),
            None => (Some(self.endpoint_for(header)?), None),
        };
        let name = endpoint
            .as_ref()
            .map_or(DYNAMIC_ENDPOINT, |e| e.config.name.as_str());
        let header = session.req_header();
        // A key is the sender's within one endpoint, or one per-request destination: an app
        // fanning one event out to its tenants sends each the same key.
        let scope = match &target {
            Some(target) => format!("{name}:{}", sha256_hex(target.url.as_bytes())),
            None => name.to_string(),
        };
        let sent_key = header_or_400(
            &header.headers,
            "idempotency-key",
            "invalid_idempotency_key",
        )?
        .map(str::to_string);
        let idempotency_key = sent_key.as_ref().map(|k| format!("{scope}:{k}"));
        let content_type = header_or_400(&header.headers, "content-type", "invalid_content_type")?
            .map(str::to_string);
        let max_body = self.live.load().max_body;
        let body = read_body(session, max_body, Duration::from_secs(30)).await?;
        let id = new_delivery_id();
        let now = now_ms();
        let record = Record {
            id,
            endpoint: name.to_string(),
            timestamp: unix_now(),
            content_type,
            created_ms: now,
            state: State::Pending,
            due_ms: now,
            round_attempts: 0,
            attempts: Vec::new(),
            target,
            event: None,
            trace: trace.as_ref().map(|s| s.context().traceparent()),
            inbound: None,
            order: None,
            idempotency_key: sent_key,
        };
        if let Some(span) = trace.filter(|s| s.is_recording()) {
            span.set("hookgate.delivery_id", record.id.clone());
            span.set("hookgate.endpoint", record.endpoint.clone());
        }
        Ok(Message {
            record,
            body,
            idempotency_key,
            endpoint,
        })
    }

    /// Stores the message; the id, and whether an `Idempotency-Key` made it a duplicate.
    async fn enqueue(&self, message: Message) -> Result<(String, bool), ErrorResponse> {
        let Message {
            record,
            body,
            idempotency_key,
            ..
        } = message;
        let id = record.id.clone();
        let window_end = record.created_ms + IDEMPOTENCY_WINDOW.as_millis() as u64;
        // Durable before the 202: the embedded commit fsyncs.
        let enqueued = self
            .queue
            .enqueue(record, body, idempotency_key.map(|k| (k, window_end)))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not store an outbound message");
                ErrorResponse::new(
                    503,
                    "queue_unavailable",
                    "the message was not stored; retry later",
                )
                .with_header("Retry-After", "5")
            })?;
        Ok(match enqueued {
            Enqueued::New => {
                self.wake.notify_one();
                (id, false)
            }
            Enqueued::Duplicate(earlier) => (earlier, true),
        })
    }
}

#[async_trait]
impl ServeHttp for OutboundApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let _under_way = crate::drain::InFlight::begin();
        let publish = self.is_publish(session.req_header());
        let mut trace = telemetry::tracer().map(|tracer| {
            let header = session.req_header();
            let route = if publish { "/events" } else { "/{endpoint}" };
            let traceparent = header
                .headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok());
            let mut span = tracer.start_from(
                format!("{} {route}", header.method),
                SpanKind::Server,
                traceparent,
            );
            span.set("http.request.method", header.method.to_string());
            span.set("http.route", route);
            span.set("url.path", header.uri.path().to_string());
            span
        });
        let response = self.answer(session, publish, trace.as_mut()).await;
        if let Some(span) = trace.as_mut().filter(|s| s.is_recording()) {
            let status = response.status().as_u16();
            span.set("http.response.status_code", status);
            if status >= 500 {
                span.fail(status.to_string(), "the message was not accepted");
            }
        }
        response
    }
}

impl OutboundApp {
    async fn answer(
        &self,
        session: &mut ServerSession,
        publish: bool,
        trace: Option<&mut Span>,
    ) -> Response<Vec<u8>> {
        if publish {
            return match self.read_event(session, trace).await {
                Ok(answer) => published(answer),
                Err(answer) => {
                    session.set_keepalive(None);
                    answer.to_response()
                }
            };
        }
        let answer = match self.read_message(session, trace).await {
            Ok(message) => match message.endpoint.as_ref().map(|e| &e.config.mode) {
                Some(DeliveryMode::Sync(sync)) => {
                    let sync = sync.clone();
                    self.deliver_now(message, &sync).await
                }
                _ => self.enqueue(message).await.map(accepted),
            },
            Err(e) => Err(e),
        };
        answer.unwrap_or_else(|answer| {
            session.set_keepalive(None);
            answer.to_response()
        })
    }
}

/// `202 {"event_id", "deliveries"}`, marked when an `Idempotency-Key` matched an earlier
/// publish (the answer is that publish's).
fn published((answer, duplicate): (serde_json::Value, bool)) -> Response<Vec<u8>> {
    let mut answer = answer;
    if duplicate {
        answer["duplicate"] = json!(true);
    }
    let mut response = json_response(202, answer);
    if duplicate {
        response
            .headers_mut()
            .insert("Hookgate-Duplicate", http::HeaderValue::from_static("true"));
    }
    response
}

/// `202 {"delivery_id": ...}`, marked when an `Idempotency-Key` matched an earlier message.
fn accepted((id, duplicate): (String, bool)) -> Response<Vec<u8>> {
    if !duplicate {
        return json_response(202, json!({ "delivery_id": id }));
    }
    let mut response = json_response(202, json!({ "delivery_id": id, "duplicate": true }));
    response
        .headers_mut()
        .insert("Hookgate-Duplicate", http::HeaderValue::from_static("true"));
    response
}
