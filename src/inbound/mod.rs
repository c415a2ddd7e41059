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
mod serve;
pub mod service;
pub mod tls_certificate;
pub mod verify;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use pingora::apps::HttpServerOptions;
use pingora::http::RequestHeader;

use crate::clock::{now_ms, unix_now};
use crate::config::{Deliver, InboundConfig};
use crate::error_response::ErrorResponse;
use crate::logging::Throttles;
use crate::metrics::{METRICS, UNMATCHED_ROUTE};
use crate::recent::{RecentRefusals, Refusal};
use crate::store::{DedupeStore, Store};
use crate::telemetry::{self, Span, SpanKind};
use client::{Client, Gone};
use dedupe::Admission;
pub use enqueue::QueueHandle;
use enqueue::Stored;
use forward::{upstream_request, Forwarded, Rewrite, UpstreamClient};
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
