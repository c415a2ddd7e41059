//! The inbound side: a provider's webhook arrives, passes each stage, and only then
//! reaches the app. Stages, in order, each in its own file:
//! [`head_limits`] and [`path`] (refuse oversized heads and ambiguous paths) → [`routing`]
//! → [`body`] (whole raw body) → [`verify`] (signature; a route's [`handshake`] is answered
//! around it, never forwarded) → [`dedupe`] (claim the delivery: a
//! guard that completes on the app's 2xx and releases otherwise) → [`rate_limit`] →
//! [`forward`] (to the app, answer relayed), or for `deliver: queue` [`enqueue`] (stored,
//! acknowledged, delivered by the worker). Each route's stages are built with the route,
//! so a request allocates no labels or handles.
//! They see the client through [`client::Client`]: hookgate's own HTTP/1 ([`http1`]) or
//! an h2 stream of Pingora's. [`connection`] admits connections before any of this.

pub mod app_connections;
pub mod body;
pub mod client;
pub mod connection;
pub mod dedupe;
pub mod enqueue;
pub mod forward;
pub mod handshake;
pub mod head_limits;
pub mod http1;
pub mod path;
pub mod rate_limit;
pub mod routing;
pub mod service;
pub mod tls_certificate;
pub mod verify;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::clock::{now_ms, unix_now};
use crate::config::{Deliver, InboundConfig, QueuedRoute};
use crate::drain;
use crate::error_response::ErrorResponse;
use crate::logging::Throttles;
use crate::metrics::{METRICS, UNMATCHED_ROUTE};
use crate::recent::{RecentRefusals, Refusal};
use crate::store::{DedupeStore, Store};
use crate::telemetry::{self, Span, SpanKind};
use client::{Client, Gone, Source};
use dedupe::{Admission, DeliveryGuard};
pub use enqueue::QueueHandle;
use forward::{upstream_request, Forwarded, Rewrite, UpstreamClient};
use http1::request::{self, HeadError};
use routing::{RouteState, RouteTable};

pub struct InboundApp {
    /// As started: what a reload cannot change (listener, connection limits, upstream).
    config: InboundConfig,
    /// What a reload changes: each request takes the state current when it arrives.
    live: ArcSwap<Live>,
    upstream: UpstreamClient,
    server_options: HttpServerOptions,
    store: Store,
    /// Opened with the first route that dedupes, then kept for the process.
    dedupe: Mutex<Option<Arc<dyn DedupeStore>>>,
    claim_lease: Duration,
    /// The last refusals, for the console.
    refusals: Arc<RecentRefusals>,
    /// Refusals logged once a second per route and reason.
    refusal_log: Throttles<(&'static str, &'static str)>,
    /// Where `deliver: queue` routes store webhooks (the outbound queue).
    queue: Option<QueueHandle>,
}

/// The routes and body limits, replaced whole by a config reload.
pub struct Live {
    routes: RouteTable,
    max_body: u64,
    body_timeout: Duration,
}

/// What became of one request: for metrics and for whether the connection can be reused.
struct Outcome {
    route: &'static str,
    /// `forwarded`, `duplicate`, `in_flight`, or the error code hookgate answered with.
    outcome: &'static str,
    status: u16,
    reusable: bool,
}

impl InboundApp {
    /// The inbound app over `store`'s dedupe and rate limiters, keeping its last refusals
    /// in `refusals`.
    pub fn new(
        config: InboundConfig,
        store: &Store,
        refusals: Arc<RecentRefusals>,
        queue: Option<QueueHandle>,
    ) -> Result<Self, String> {
        // A claim stays in flight at most this long: longer than any delivery.
        let claim_lease =
            config.connect_timeout + config.upstream_timeout * 2 + Duration::from_secs(10);
        // h2c is detected by `connection::InboundService`, which has a deadline for it.
        let mut server_options = HttpServerOptions::default();
        server_options.h2_idle_timeout = Some(config.limits.idle_timeout);
        let app = InboundApp {
            live: ArcSwap::from_pointee(Live {
                routes: RouteTable::new(
                    &[],
                    &RouteState {
                        store,
                        dedupe: None,
                        claim_lease,
                    },
                    None,
                )?,
                max_body: config.max_body,
                body_timeout: config.body_timeout,
            }),
            upstream: UpstreamClient::new(&config)?,
            server_options,
            store: store.clone(),
            dedupe: Mutex::new(None),
            claim_lease,
            refusals,
            refusal_log: Throttles::default(),
            queue,
            config,
        };
        let live = app.prepare(&app.config)?;
        app.apply(live);
        Ok(app)
    }

    /// Builds the routes of `config` (a reload's), ready to [`apply`](Self::apply); routes
    /// that keep their name and limit keep their limiter's state.
    pub fn prepare(&self, config: &InboundConfig) -> Result<Live, String> {
        let queued = config
            .routes
            .iter()
            .any(|r| matches!(r.deliver, Deliver::Queue(_)));
        if queued && self.queue.is_none() {
            return Err("a deliver: queue route needs the queue, which was not started".into());
        }
        let deduping = config.routes.iter().filter(|r| r.dedupe.is_some()).count();
        let dedupe = {
            let mut opened = self.dedupe.lock().unwrap_or_else(|e| e.into_inner());
            if opened.is_none() && deduping > 0 {
                *opened = Some(self.store.dedupe(deduping)?);
            }
            opened.clone()
        };
        let state = RouteState {
            store: &self.store,
            dedupe,
            claim_lease: self.claim_lease,
        };
        Ok(Live {
            routes: RouteTable::new(&config.routes, &state, Some(&self.live.load().routes))?,
            max_body: config.max_body,
            body_timeout: config.body_timeout,
        })
    }

    /// Requests from now on use `live`; those in flight finish with what they started with.
    pub fn apply(&self, live: Live) {
        self.live.store(Arc::new(live));
    }

    async fn handle(&self, client: &mut Client<'_>, trace: &mut Option<Span>) -> Outcome {
        let path = client.req_header().uri.path().to_string();
        if let Err(answer) = path::check(&path) {
            return self.reject(client, UNMATCHED_ROUTE, answer).await;
        }
        let live = self.live.load_full();
        let Some(route) = live.routes.find(&path) else {
            let answer = ErrorResponse::new(
                404,
                "route_not_found",
                format!("no route is configured for {path}"),
            );
            return self.reject(client, UNMATCHED_ROUTE, answer).await;
        };
        let name = route.name;
        if let Some(span) = trace {
            span.set_name(format!("{} {name}", client.req_header().method));
            span.set("hookgate.route", name);
        }
        let limit = route.config.max_body.unwrap_or(live.max_body);
        let body = match crate::http_io::read_body(client, limit, live.body_timeout).await {
            Ok(body) => body,
            Err(answer) => return self.reject(client, name, answer).await,
        };
        if let Some(handshake) = &route.handshake {
            if let Some(reply) = handshake.before_verify(client.req_header()) {
                return self
                    .handshake(client, name, handshake.provider(), reply)
                    .await;
            }
        }
        let passed = match route.verifier.check(client.req_header(), &body, unix_now()) {
            Ok(passed) => passed,
            // The body was read completely, so the connection stays usable.
            Err(answer) => return self.answer(client, name, answer, true).await,
        };
        if let Some(verified) = &passed.verified {
            METRICS.record_verified(name, verified.secret_index);
        }
        if let Some(span) = trace.as_mut().filter(|s| s.is_recording()) {
            span.event(
                "verify",
                vec![("hookgate.scheme", passed.scheme.as_str().to_string().into())],
            );
            if let Some(id) = passed.verified.as_ref().and_then(|v| v.id.clone()) {
                span.set("hookgate.delivery_id", id);
            }
        }
        if let Some(handshake) = &route.handshake {
            if let Some(reply) = handshake.after_verify(client.req_header(), &body) {
                return self
                    .handshake(client, name, handshake.provider(), reply)
                    .await;
            }
        }
        let client_ip = client.client_ip();

        // Dedupe: claim the delivery, or answer for the earlier one.
        let mut guard = None;
        if let Some(dedupe) = &route.dedupe {
            let header = client.req_header();
            match dedupe.admit(header, &body, passed.verified.as_ref()).await {
                Admission::Forward(claim) => {
                    guard = claim;
                    if let Some(span) = trace {
                        span.event("dedupe", vec![("hookgate.dedupe", "claimed".into())]);
                    }
                }
                Admission::Duplicate { status, id } => {
                    if let Some(span) = trace {
                        span.event("dedupe", vec![("hookgate.dedupe", "duplicate".into())]);
                    }
                    let written = dedupe::answer_duplicate(client, status, &id).await.is_ok();
                    return Outcome {
                        route: name,
                        outcome: "duplicate",
                        status,
                        reusable: written,
                    };
                }
                Admission::Refuse(answer) => return self.answer(client, name, answer, true).await,
            }
        }

        let limited = match &route.limiter {
            None => None,
            Some(limiter) => Some(limiter.check(name, client.req_header(), client_ip).await),
        };
        if let (Some(span), Some(result)) = (trace.as_mut(), &limited) {
            let result = if result.is_ok() { "allowed" } else { "limited" };
            span.event("rate_limit", vec![("hookgate.rate_limit", result.into())]);
        }
        let rate_headers = match limited {
            None => Vec::new(),
            Some(Ok(headers)) => headers,
            Some(Err(answer)) => {
                if let Some(mut guard) = guard {
                    guard.release().await;
                }
                return self.answer(client, name, answer, true).await;
            }
        };

        if let Deliver::Queue(queued) = &route.config.deliver {
            let stored = Stored {
                name,
                route: queued,
                allow_underscores: route.config.allow_underscore_headers,
                passed: &passed,
                body: &body,
            };
            return self
                .enqueue(client, stored, guard, rate_headers, trace)
                .await;
        }
        let delivery_id = passed.verified.as_ref().and_then(|v| v.id.as_deref());
        let added = [
            ("Hookgate-Route", name),
            ("Hookgate-Verified", passed.scheme.as_str()),
            ("Hookgate-Delivery-Id", delivery_id.unwrap_or_default()),
        ];
        // The app's parent is a client span of hookgate's: the forward.
        let mut forward_span = trace.as_ref().map(|s| s.child("forward", SpanKind::Client));
        let traceparent = forward_span.as_ref().map(|s| s.context().traceparent());
        let rewrite = Rewrite {
            forwarded_for: client.client_ip_text(),
            tls: self.config.tls.is_some(),
            strip: passed.strip,
            add: &added[..if delivery_id.is_some() { 3 } else { 2 }],
            traceparent: traceparent.as_deref(),
            allow_underscores: route.config.allow_underscore_headers,
        };
        let request = match upstream_request(client.req_header(), &body, &rewrite) {
            Ok(request) => request,
            Err(why) => {
                if let Some(mut guard) = guard {
                    guard.release().await;
                }
                let answer = ErrorResponse::new(
                    400,
                    "bad_request",
                    format!("request cannot be forwarded: {why}"),
                );
                return self.answer(client, name, answer, true).await;
            }
        };
        let forwarded = self.upstream.forward(client, request, &rate_headers).await;
        let app_status = match &forwarded {
            Ok(
                Forwarded::Complete { status }
                | Forwarded::Broken { status }
                | Forwarded::Incomplete { status, .. },
            ) => Some(*status),
            Err(_) => None,
        };
        if let Some(status) = app_status {
            METRICS.record_upstream(name, status);
        }
        if let Some(span) = forward_span.as_mut().filter(|s| s.is_recording()) {
            self.upstream.describe(span);
            if let Some(status) = app_status {
                span.set("http.response.status_code", status);
            }
            match &forwarded {
                Err(answer) | Ok(Forwarded::Incomplete { answer, .. }) => {
                    span.fail(answer.code, answer.message.clone())
                }
                Ok(_) if app_status.is_some_and(|s| s >= 500) => {
                    span.fail("app_error", "the app answered with a server error")
                }
                Ok(_) => {}
            }
        }
        drop(forward_span);
        // The app has the delivery once it answered 2xx, even if the client went away since
        // or the rest of the app's answer never came: a retry is then a duplicate.
        if let Some(guard) = guard {
            guard.finish(app_status).await;
        }
        match forwarded {
            Ok(Forwarded::Complete { status }) => Outcome {
                route: name,
                outcome: "forwarded",
                status,
                reusable: true,
            },
            Ok(Forwarded::Broken { status }) => Outcome {
                route: name,
                outcome: "forwarded",
                status,
                reusable: false,
            },
            Ok(Forwarded::Incomplete { mut answer, .. }) | Err(mut answer) => {
                let (trace_id, span_id) = telemetry::log_ids(trace.as_ref().map(Span::context));
                tracing::warn!(
                    route = name,
                    error = answer.code,
                    trace_id,
                    span_id,
                    "{}",
                    answer.message
                );
                answer.headers.extend(rate_headers);
                self.answer(client, name, answer, true).await
            }
        }
    }

    /// Stores a verified webhook for the worker to deliver, then acknowledges it; a
    /// dedupe claim is finished once it is stored (a provider's retry is a duplicate).
    async fn enqueue(
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
            guard.finish(Some(200)).await;
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

    /// Answers a provider's handshake (or refuses it); the app never sees it.
    async fn handshake(
        &self,
        client: &mut Client<'_>,
        route: &'static str,
        provider: &'static str,
        reply: Result<handshake::Reply, ErrorResponse>,
    ) -> Outcome {
        match reply {
            Ok(reply) => {
                METRICS.record_handshake(route, provider, "answered");
                let fields = [
                    ("Content-Type", reply.content_type),
                    ("Cache-Control", "no-store"),
                    ("X-Content-Type-Options", "nosniff"),
                ];
                let written = client.respond(200, &fields, &reply.body, true).await;
                Outcome {
                    route,
                    outcome: "handshake",
                    status: 200,
                    reusable: written.is_ok(),
                }
            }
            Err(answer) => {
                METRICS.record_handshake(route, provider, "refused");
                self.answer(client, route, answer, true).await
            }
        }
    }

    /// Answers with an error before the body was read: the connection is closed after it,
    /// once what the client still sends of the body is drained.
    async fn reject(
        &self,
        client: &mut Client<'_>,
        route: &'static str,
        answer: ErrorResponse,
    ) -> Outcome {
        let outcome = self.answer(client, route, answer, false).await;
        body::linger(client).await;
        outcome
    }

    /// Keeps a refusal for the console: names of headers, never values but the claimed id.
    fn remember_refusal(
        &self,
        header: Option<&RequestHeader>,
        source: Option<IpAddr>,
        outcome: &Outcome,
    ) {
        if self.refusals.capacity() == 0 {
            return;
        }
        let (headers, delivery_id) = match header {
            Some(header) => {
                let live = self.live.load();
                let id_header = live
                    .routes
                    .by_name(outcome.route)
                    .and_then(|r| r.id_header());
                Refusal::describe(header, id_header)
            }
            None => (Vec::new(), None),
        };
        self.refusals.record(Refusal {
            at_ms: crate::clock::now_ms(),
            route: outcome.route,
            reason: outcome.outcome,
            status: outcome.status,
            source,
            delivery_id,
            headers,
        });
    }

    async fn answer(
        &self,
        client: &mut Client<'_>,
        route: &'static str,
        answer: ErrorResponse,
        keepalive: bool,
    ) -> Outcome {
        METRICS.record_inbound_error(route, answer.code);
        // Every refusal is counted; one line a second per route and reason is logged, so a
        // flood of forged requests does not drown the log. (5xx answers are failures of the
        // app or the store, logged where they happen.)
        let refusal = answer.status < 500;
        if let Some(skipped) = refusal
            .then(|| self.refusal_log.allow((route, answer.code), now_ms()))
            .flatten()
        {
            tracing::info!(
                route,
                error = answer.code,
                status = answer.status,
                skipped,
                "refused: {}",
                answer.message
            );
        }
        let written = send(client, &answer, keepalive).await.is_ok();
        Outcome {
            route,
            outcome: answer.code,
            status: answer.status,
            reusable: written && keepalive,
        }
    }
}

/// A verified webhook on its way into the queue.
struct Stored<'a> {
    name: &'static str,
    route: &'a QueuedRoute,
    allow_underscores: bool,
    passed: &'a verify::Passed,
    body: &'a bytes::Bytes,
}

/// Writes hookgate's own error answer; the connection is closed after it unless `keepalive`.
async fn send(
    client: &mut Client<'_>,
    answer: &ErrorResponse,
    keepalive: bool,
) -> Result<(), Gone> {
    client
        .respond(
            answer.status,
            &error_fields(answer),
            &answer.body(),
            keepalive,
        )
        .await
}

/// The header fields of an error answer of hookgate's (its JSON body, never cached).
fn error_fields(answer: &ErrorResponse) -> Vec<(&'static str, &str)> {
    let mut fields = vec![
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
    ];
    fields.extend(answer.headers.iter().map(|(n, v)| (*n, v.as_str())));
    fields
}

#[async_trait]
impl HttpServerApp for InboundApp {
    /// Pingora's entry for each h2 stream (HTTP/1 connections are served by
    /// [`InboundApp::serve_http1`]).
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let limits = &self.config.limits;
        let refusal = match tokio::time::timeout(limits.header_timeout, session.read_request())
            .await
        {
            Ok(Ok(true)) => head_limits::check(session.req_header(), limits),
            Ok(Ok(false)) => return None,
            Err(_) => {
                METRICS.record_connection_closed("header_timeout");
                Some(head_limits::header_timeout(limits.header_timeout))
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e.etype().as_str(), "could not read an h2 request head");
                return None;
            }
        };
        let _under_way = drain::InFlight::begin();
        let started = Instant::now();
        let mut client = Client::http2(session);
        match refusal {
            Some(answer) => self.refuse_head(&mut client, answer, started).await,
            None => self.process(&mut client, started, shutdown).await,
        }
        client.finish().await;
        None
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.server_options)
    }
}

impl InboundApp {
    /// Serves an HTTP/1 connection's requests one after another, until the client closes
    /// it or an answer leaves it unusable.
    pub async fn serve_http1(&self, stream: Stream, shutdown: &ShutdownWatch) {
        let limits = &self.config.limits;
        let source = Source::of_stream(&stream);
        let mut conn = http1::Connection::new(stream);
        // A kept-alive connection's later heads may also wait out the idle time.
        let mut deadline = limits.header_timeout;
        loop {
            let read = tokio::time::timeout(deadline, request::read(&mut conn, limits)).await;
            let started = Instant::now();
            let refusal = match read {
                Ok(Ok(Some(request))) => {
                    let _under_way = drain::InFlight::begin();
                    let refusal = head_limits::check(&request.header, limits);
                    let mut client = Client::http1(&mut conn, &source, request);
                    match refusal {
                        Some(answer) => self.refuse_head(&mut client, answer, started).await,
                        None => self.process(&mut client, started, shutdown).await,
                    }
                    if client.finish().await {
                        deadline = limits.idle_timeout + limits.header_timeout;
                        continue;
                    }
                    return;
                }
                Ok(Ok(None) | Err(HeadError::Gone)) => return,
                // Idle, not slow: nothing of a next request came.
                Err(_) if conn.is_drained() => return,
                Ok(Err(HeadError::Refused(answer))) => {
                    METRICS.record_connection_closed("bad_request");
                    answer
                }
                Err(_) => {
                    METRICS.record_connection_closed("header_timeout");
                    head_limits::header_timeout(deadline)
                }
            };
            return self
                .refuse_unread_head(&mut conn, &source, refusal, started)
                .await;
        }
    }

    /// Answers a head that could not be read whole or parsed, and closes the connection.
    async fn refuse_unread_head(
        &self,
        conn: &mut http1::Connection,
        source: &Source,
        refusal: ErrorResponse,
        started: Instant,
    ) {
        tracing::info!(
            error = refusal.code,
            status = refusal.status,
            "refused a request head"
        );
        METRICS.record_inbound_error(UNMATCHED_ROUTE, refusal.code);
        let wire = http1::answer::whole(
            refusal.status,
            &error_fields(&refusal),
            &refusal.body(),
            false,
            false,
        );
        let _ = conn.write(&wire).await;
        METRICS.record_inbound(
            UNMATCHED_ROUTE,
            refusal.code,
            refusal.status,
            started.elapsed(),
        );
        let outcome = Outcome {
            route: UNMATCHED_ROUTE,
            outcome: refusal.code,
            status: refusal.status,
            reusable: false,
        };
        // A head that was not read whole has nothing to show but its source.
        self.remember_refusal(None, source.ip, &outcome);
    }

    /// Answers a request whose head is over a limit, and closes the connection after it.
    async fn refuse_head(&self, client: &mut Client<'_>, answer: ErrorResponse, started: Instant) {
        tracing::info!(
            error = answer.code,
            status = answer.status,
            "refused a request head"
        );
        let outcome = self.answer(client, UNMATCHED_ROUTE, answer, false).await;
        METRICS.record_inbound(
            UNMATCHED_ROUTE,
            outcome.outcome,
            outcome.status,
            started.elapsed(),
        );
        self.remember_refusal(Some(client.req_header()), client.client_ip(), &outcome);
    }

    /// Serves one request whose head was read: its stages, the answer, its metrics.
    async fn process(&self, client: &mut Client<'_>, started: Instant, shutdown: &ShutdownWatch) {
        let limits = &self.config.limits;
        let stopping = *shutdown.borrow() || drain::is_stopping();
        let keepalive = (!stopping).then_some(limits.idle_timeout.as_secs().max(1));
        client.set_keepalive(keepalive);
        let mut trace = telemetry::tracer().map(|tracer| {
            let header = client.req_header();
            let traceparent = header
                .headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok());
            tracer.start_from(header.method.to_string(), SpanKind::Server, traceparent)
        });
        // Boxed: the request's state machine is large, and inline it would be held by every
        // connection that is only waiting for its next request.
        let outcome = Box::pin(self.handle(client, &mut trace)).await;
        METRICS.record_inbound(
            outcome.route,
            outcome.outcome,
            outcome.status,
            started.elapsed(),
        );
        if let Some(span) = trace.as_mut().filter(|s| s.is_recording()) {
            describe_request(span, client, &outcome);
        }
        drop(trace);
        if !matches!(
            outcome.outcome,
            "forwarded" | "duplicate" | "handshake" | "queued"
        ) {
            self.remember_refusal(Some(client.req_header()), client.client_ip(), &outcome);
        }
        if !outcome.reusable {
            client.set_keepalive(None);
        }
    }
}

/// The OpenTelemetry HTTP server attributes of a request, and hookgate's.
fn describe_request(span: &mut Span, client: &Client<'_>, outcome: &Outcome) {
    let header = client.req_header();
    span.set("http.request.method", header.method.to_string());
    span.set("url.path", header.uri.path().to_string());
    span.set("url.scheme", if client.is_tls() { "https" } else { "http" });
    span.set(
        "network.protocol.version",
        if client.is_http2() { "2" } else { "1.1" },
    );
    if let Some(ip) = client.client_ip() {
        span.set("client.address", ip.to_string());
    }
    if let Some(agent) = header
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
    {
        span.set("user_agent.original", agent.to_string());
    }
    span.set("http.response.status_code", outcome.status);
    span.set("hookgate.outcome", outcome.outcome);
    if outcome.route == UNMATCHED_ROUTE {
        span.set("hookgate.route", UNMATCHED_ROUTE);
    }
    if outcome.status >= 500 {
        span.fail(outcome.status.to_string(), outcome.outcome);
    }
}
