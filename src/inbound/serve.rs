//! Serving connections on the inbound port: each HTTP/1 connection's requests one after
//! another ([`InboundApp::serve_http1`]) and each h2 stream (Pingora's), with the head
//! limits, the answer's metrics and the request's server span around `InboundApp::handle`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use super::client::{Client, Source};
use super::http1::request::{self, HeadError};
use super::{error_fields, head_limits, http1, InboundApp, Outcome};
use crate::drain;
use crate::error_response::ErrorResponse;
use crate::metrics::{METRICS, UNMATCHED_ROUTE};
use crate::telemetry::{self, Span, SpanKind};

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
