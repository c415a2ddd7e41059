//! One delivery attempt: sign, POST to the endpoint with Pingora's connector, read the
//! answer. The outcome says what the schedule should do next.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use super::egress_proxy::ProxyRoute;
use super::egress_tls::ClientTls;
use super::pacing::{LastAttempt, Pacing};
use super::receiver_auth::Credentials;
use super::retry::parse_retry_after;
use super::ssrf;
use crate::clock::{now_ms, unix_now};
use crate::config::Cidr;
use crate::config::{DeliveryMode, Destination, EndpointConfig, QueuedRoute, SignConfig};
use crate::http_io::{exchange, read_answer};
use crate::metrics::METRICS;
use crate::schemes::{Message, SchemeSpec, Verifier};
use crate::store::queue::{Attempt, InboundRequest, Record};
use crate::store::PacingStore;
use crate::telemetry::{self, Span, SpanKind, TraceContext};

/// How much of a receiver's answer is kept with the attempt.
const RESPONSE_EXCERPT: usize = 1024;
/// Most of an answer that is read (then the connection is dropped, not reused); a sync
/// delivery passes this much back to the app. Also the most of a token endpoint's answer.
const RESPONSE_READ_LIMIT: usize = 64 * 1024;

/// Why an attempt got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum AttemptError {
    /// The SSRF guard stopped it: the destination may not be reached at all.
    #[error("refused: {0}")]
    Refused(String),
    /// Anything else: signing, resolving, connecting, sending or reading.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for AttemptError {
    fn from(e: String) -> Self {
        AttemptError::Failed(e)
    }
}

impl From<&str> for AttemptError {
    fn from(e: &str) -> Self {
        AttemptError::Failed(e.to_string())
    }
}

/// An endpoint ready to deliver to: its signer and its connection settings.
pub struct Endpoint {
    pub config: EndpointConfig,
    /// Shared by the worker and sync deliveries, so both respect the same limits.
    pub pacing: Pacing,
    /// `None` for a `deliver: queue` route's app: its requests go on as they came, signed
    /// by the provider.
    signer: Option<Verifier>,
    /// A route's `queue.dead_on_4xx`: a 4xx other than 408, 425 and 429 is final.
    dead_on_4xx: bool,
    /// For per-request destinations: the SSRF guard's allow-list. Configured endpoints
    /// are the operator's choice and may be internal.
    guard: Option<Vec<Cidr>>,
    /// `tls:`: private CAs, a client certificate, the lowest TLS version.
    tls: Option<ClientTls>,
    /// `outbound.proxy`, which every connection goes through (unless `no_proxy` says).
    proxy: Option<Arc<ProxyRoute>>,
    /// `auth:`; shared by every per-request destination, so they share one OAuth2 token.
    credentials: Option<Arc<Credentials>>,
}

/// The result of one attempt.
pub struct Outcome {
    pub attempt: Attempt,
    pub retry_after: Option<Duration>,
    /// `410 Gone`: the receiver asks never to be sent to again.
    pub gone: bool,
    /// The destination may not be reached at all (the SSRF guard): no retry can help.
    pub refused: bool,
    pub success: bool,
    /// The answer was a 4xx a route's app means (`queue.dead_on_4xx`): no retry can help.
    pub final_answer: bool,
    /// The receiver's whole answer (up to a limit), for sync deliveries.
    pub reply: Reply,
    /// The attempt's span, when traced: for the log line.
    pub trace: Option<TraceContext>,
}

/// What a receiver answered, as a sync delivery passes it back to the app.
#[derive(Default)]
pub struct Reply {
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Endpoint {
    /// `time_scale` scales the circuit breaker's durations (tests run them fast).
    pub fn new(
        config: EndpointConfig,
        pacing: Arc<dyn PacingStore>,
        time_scale: f64,
    ) -> Result<Self, String> {
        let secrets: Vec<&str> = config.sign.secrets.iter().map(|s| s.expose()).collect();
        let signer = Verifier::new(&config.sign.scheme, &secrets, None)?;
        let credentials = config.auth.as_ref().map(Credentials::new).transpose()?;
        Ok(Endpoint {
            credentials: credentials.map(Arc::new),
            pacing: Pacing::new(&config.name, &config.policy, pacing, time_scale),
            tls: config.tls.clone().map(ClientTls::new),
            config,
            signer: Some(signer),
            dead_on_4xx: false,
            guard: None,
            proxy: None,
        })
    }

    /// The app behind a `deliver: queue` route, under the route's queue name.
    pub fn for_route(route: &QueuedRoute, pacing: Arc<dyn PacingStore>, time_scale: f64) -> Self {
        let name = QueuedRoute::queue_name(&route.name);
        let config = EndpointConfig {
            url: Destination {
                tls: route.upstream.tls,
                host: route.upstream.host.clone(),
                port: route.upstream.port,
                path: "/".to_string(),
            },
            url_match: None,
            // Not used: the provider signed the request.
            sign: SignConfig {
                scheme: SchemeSpec::Named("none".to_string()),
                secrets: Vec::new(),
            },
            policy: route.policy.clone(),
            mode: DeliveryMode::Async,
            tls: None,
            trace_propagation: true,
            auth: None,
            name,
        };
        Endpoint {
            pacing: Pacing::new(&config.name, &config.policy, pacing, time_scale),
            tls: None,
            config,
            signer: None,
            dead_on_4xx: route.dead_on_4xx,
            guard: None,
            proxy: None,
            credentials: None,
        }
    }

    /// The same endpoint as `earlier` (from the config before a reload) if it keeps its name
    /// and URL: it keeps that one's circuit breaker.
    pub fn continuing(mut self, earlier: Option<&Endpoint>) -> Self {
        let same = earlier
            .filter(|e| e.config.name == self.config.name && e.config.url == self.config.url);
        if let Some(earlier) = same {
            self.pacing.continue_from(&earlier.pacing);
        }
        self
    }

    /// The same endpoint, connecting through `proxy`.
    pub fn with_proxy(mut self, proxy: Option<Arc<ProxyRoute>>) -> Self {
        self.proxy = proxy;
        self
    }

    /// The same endpoint, sending `credentials` (when its config has no `auth` of its own).
    pub fn with_credentials(mut self, credentials: Option<Arc<Credentials>>) -> Self {
        self.credentials = self.credentials.or(credentials);
        self
    }

    /// An endpoint for one per-request destination, behind the SSRF guard.
    pub fn guarded(
        config: EndpointConfig,
        allow: Vec<Cidr>,
        pacing: Arc<dyn PacingStore>,
        time_scale: f64,
    ) -> Result<Self, String> {
        let mut endpoint = Endpoint::new(config, pacing, time_scale)?;
        endpoint.guard = Some(allow);
        Ok(endpoint)
    }

    async fn peer(&self, destination: &Destination) -> Result<HttpPeer, AttemptError> {
        // Resolve asynchronously: HttpPeer::new would block (and panic on failure) if given a name.
        let addr: SocketAddr =
            tokio::net::lookup_host((destination.host.as_str(), destination.port))
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", destination.host))?
                .next()
                .ok_or_else(|| format!("{} resolves to no address", destination.host))?;
        if let Some(allow) = &self.guard {
            ssrf::check(addr.ip(), allow).map_err(AttemptError::Refused)?;
        }
        let mut peer = HttpPeer::new(addr, destination.tls, destination.host.clone());
        let timeout = self.config.policy.retry.timeout;
        peer.options.connection_timeout = Some(timeout);
        peer.options.total_connection_timeout = Some(timeout);
        peer.options.read_timeout = Some(timeout);
        peer.options.write_timeout = Some(timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(30));
        if let (true, Some(tls)) = (destination.tls, &self.tls) {
            tls.apply(&mut peer)?;
        }
        if let Some(proxy) = &self.proxy {
            proxy.apply(&mut peer, destination);
        }
        Ok(peer)
    }

    /// Attempts `record` once, cut off after `timeout`; never panics, every failure is
    /// an attempt with an error.
    pub async fn attempt(
        &self,
        connector: &Connector,
        record: &Record,
        body: &[u8],
        timeout: Duration,
    ) -> Outcome {
        let started = Instant::now();
        let at_ms = now_ms();
        // A span in the trace that accepted the message, however much later the attempt.
        let mut span = telemetry::tracer()
            .map(|t| t.start_from("POST", SpanKind::Client, record.trace.as_deref()));
        let traceparent = span
            .as_ref()
            .filter(|_| self.config.trace_propagation)
            .map(|s| s.context().traceparent());
        let mut request_headers = Vec::new();
        let mut awaiting_token = false;
        let send = self.send(
            connector,
            record,
            body,
            traceparent.as_deref(),
            &mut request_headers,
            &mut awaiting_token,
        );
        let result = tokio::time::timeout(timeout, send).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let (status, retry_after, reply, error) = match result {
            Ok(Ok((status, retry_after, reply))) => (Some(status), retry_after, reply, None),
            Ok(Err(e)) => (None, None, Reply::default(), Some(e)),
            Err(_) => (
                None,
                None,
                Reply::default(),
                Some(AttemptError::Failed(format!(
                    "no answer within {}s{}",
                    timeout.as_secs_f64(),
                    if awaiting_token {
                        " from the OAuth2 token endpoint"
                    } else {
                        ""
                    }
                ))),
            ),
        };
        let excerpt = &reply.body[..reply.body.len().min(RESPONSE_EXCERPT)];
        let success = status.is_some_and(|s| self.config.policy.retry.is_success(s));
        let outcome = Outcome {
            refused: matches!(error, Some(AttemptError::Refused(_))),
            final_answer: self.dead_on_4xx
                && !success
                && status.is_some_and(|s| (400..500).contains(&s) && !matches!(s, 408 | 425 | 429)),
            success,
            gone: status == Some(410),
            retry_after,
            attempt: Attempt {
                at_ms,
                status,
                error: error.map(|e| e.to_string()),
                latency_ms,
                response: String::from_utf8_lossy(excerpt).into_owned(),
                request_headers,
            },
            reply,
            trace: span.as_ref().map(Span::context),
        };
        METRICS.record_outbound_attempt(&record.endpoint, status, latency_ms);
        if let Some(span) = span.as_mut().filter(|s| s.is_recording()) {
            self.describe_attempt(span, record, &outcome);
        }
        outcome
    }

    /// The OpenTelemetry HTTP client attributes of an attempt, and hookgate's.
    fn describe_attempt(&self, span: &mut Span, record: &Record, outcome: &Outcome) {
        let destination = &self.config.url;
        // Not the query: a tenant's URL may carry a token there.
        let path = destination.path.split('?').next().unwrap_or("/");
        let scheme = if destination.tls { "https" } else { "http" };
        span.set("http.request.method", "POST");
        span.set("server.address", destination.host.clone());
        span.set("server.port", destination.port);
        span.set(
            "url.full",
            format!("{scheme}://{}:{}{path}", destination.host, destination.port),
        );
        span.set("http.request.resend_count", record.attempts.len() as i64);
        span.set("hookgate.delivery_id", record.id.clone());
        span.set("hookgate.endpoint", record.endpoint.clone());
        if let Some(event) = &record.event {
            span.set("hookgate.subscription", event.subscription.clone());
            span.set("hookgate.event_type", event.event_type.clone());
        }
        match (outcome.attempt.status, &outcome.attempt.error) {
            (Some(status), _) => {
                span.set("http.response.status_code", status);
                if !outcome.success {
                    span.fail(
                        status.to_string(),
                        "the receiver did not accept the delivery",
                    );
                }
            }
            (None, Some(error)) => {
                let kind = if outcome.refused {
                    "refused"
                } else {
                    "no_answer"
                };
                span.fail(kind, error.clone());
            }
            (None, None) => {}
        }
    }

    /// Feeds an attempt's outcome to the endpoint's circuit breaker; when that opens the
    /// circuit, why and until when (unix ms), for the other replicas.
    pub fn record_outcome(&self, outcome: &Outcome, now_ms: u64) -> Option<(String, u64)> {
        let name = &self.config.name;
        self.pacing.note(LastAttempt {
            at_ms: outcome.attempt.at_ms,
            status: outcome.attempt.status,
            error: outcome.attempt.error.clone(),
        });
        let opened = self.pacing.record(outcome.success, now_ms);
        if let Some(reason) = &opened {
            tracing::warn!(endpoint = %name, reason, "circuit open: pausing deliveries to the endpoint");
        }
        let opened = opened.zip(self.pacing.open_until());
        if self.guard.is_some() {
            return opened; // a gauge per tenant URL would be a label per tenant
        }
        METRICS
            .outbound_circuit_open
            .get_or_create(&crate::metrics::EndpointLabels {
                endpoint: name.clone(),
            })
            .set(i64::from(self.pacing.is_open(now_ms)));
        opened
    }

    /// One request to the receiver; `sent` gets its headers (masked) as soon as they are
    /// built, so an attempt that fails to connect still shows what it would have sent.
    /// `awaiting_token` is set while the attempt waits for an OAuth2 token.
    async fn send(
        &self,
        connector: &Connector,
        record: &Record,
        body: &[u8],
        traceparent: Option<&str>,
        sent: &mut Vec<(String, String)>,
        awaiting_token: &mut bool,
    ) -> Result<(u16, Option<Duration>, Reply), AttemptError> {
        let destination = &self.config.url;
        let (mut request, mut masked) = match (&record.inbound, &self.signer) {
            (Some(inbound), _) => (forwarded_request(record, inbound, body.len())?, Vec::new()),
            (None, Some(signer)) => self.signed_request(signer, record, body)?,
            (None, None) => return Err("the message is not an inbound webhook".into()),
        };
        if let Some(traceparent) = traceparent {
            request
                .insert_header("traceparent", traceparent)
                .map_err(|e| e.to_string())?;
        }
        let credentials = self
            .credentials
            .as_ref()
            .filter(|_| record.inbound.is_none());
        for (name, value) in credentials.iter().flat_map(|c| &c.fixed) {
            request
                .insert_header(name.clone(), value.as_str())
                .map_err(|e| e.to_string())?;
        }
        masked.extend(credentials.into_iter().flat_map(|c| c.names()));
        *sent = masked_headers(&request, &masked, record);
        let mut bearer = None;
        if let Some(source) = credentials.and_then(|c| c.oauth2.as_ref()) {
            sent.push(("authorization".into(), "[masked]".into()));
            *awaiting_token = true;
            let token = source
                .token(|request, body| {
                    self.fetch_token(connector, &source.destination, request, body)
                })
                .await?;
            *awaiting_token = false;
            request
                .insert_header("Authorization", format!("Bearer {}", token.value))
                .map_err(|e| e.to_string())?;
            bearer = Some((source, token.generation));
        }
        let peer = self.peer(destination).await?;
        let (mut http, _reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(tls) = self.tls.as_ref().filter(|_| destination.tls) {
            let negotiated = http
                .digest()
                .and_then(|d| d.ssl_digest.as_ref())
                .map_or("", |d| d.version.as_ref());
            tls.check_version(negotiated)?;
        }
        exchange(&mut http, request, Bytes::copy_from_slice(body)).await?;
        let header = http.response_header().ok_or("no response header")?;
        let status = header.status.as_u16();
        if let (401, Some((source, generation))) = (status, bearer) {
            source.invalidate(generation);
        }
        let text = |name: &str| header.headers.get(name).and_then(|v| v.to_str().ok());
        let retry_after = text("retry-after").and_then(|v| parse_retry_after(v, unix_now()));
        let content_type = text("content-type").map(str::to_string);
        let answer = read_answer(connector, http, &peer, RESPONSE_READ_LIMIT).await;
        Ok((
            status,
            retry_after,
            Reply {
                content_type,
                body: answer,
            },
        ))
    }
    /// POSTs a token request to an OAuth2 token endpoint, through the same SSRF guard,
    /// proxy and TLS settings as the deliveries; the status and (some of) the answer.
    async fn fetch_token(
        &self,
        connector: &Connector,
        destination: &Destination,
        request: RequestHeader,
        body: Bytes,
    ) -> Result<(u16, Vec<u8>), AttemptError> {
        let peer = self.peer(destination).await?;
        let (mut http, _reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| e.to_string())?;
        exchange(&mut http, request, body).await?;
        let status = http
            .response_header()
            .ok_or("no response header")?
            .status
            .as_u16();
        let answer = read_answer(connector, http, &peer, RESPONSE_READ_LIMIT).await;
        Ok((status, answer))
    }

    /// The POST hookgate signs for an endpoint, a destination or a subscription, and the
    /// names of the headers its signer added.
    fn signed_request(
        &self,
        signer: &Verifier,
        record: &Record,
        body: &[u8],
    ) -> Result<(RequestHeader, Vec<String>), AttemptError> {
        let destination = &self.config.url;
        let url = destination.to_string();
        let signed = signer
            .sign(&Message {
                id: &record.id,
                timestamp: record.timestamp,
                method: "POST",
                url: Some(&url),
                body,
            })
            .map_err(|e| format!("cannot sign: {e}"))?;
        let mut request =
            RequestHeader::build("POST", destination.path.as_bytes(), Some(signed.len() + 4))
                .map_err(|e| e.to_string())?;
        let host = destination.host_header();
        let insert = |request: &mut RequestHeader, name: String, value: String| {
            request
                .insert_header(name, value)
                .map_err(|e| e.to_string())
        };
        insert(&mut request, "Host".into(), host)?;
        insert(
            &mut request,
            "Content-Type".into(),
            record
                .content_type
                .clone()
                .unwrap_or_else(|| "application/json".into()),
        )?;
        insert(
            &mut request,
            "Content-Length".into(),
            body.len().to_string(),
        )?;
        insert(
            &mut request,
            "User-Agent".into(),
            concat!("hookgate/", env!("CARGO_PKG_VERSION")).into(),
        )?;
        let signature_headers: Vec<String> = signed.iter().map(|(n, _)| n.clone()).collect();
        for (name, value) in signed {
            insert(&mut request, name, value)?;
        }
        Ok((request, signature_headers))
    }
}

/// The request a `deliver: queue` route's app gets: the one the provider sent (method,
/// target, headers as in proxy mode), with the delivery's id, attempt and arrival time.
fn forwarded_request(
    record: &Record,
    inbound: &InboundRequest,
    length: usize,
) -> Result<RequestHeader, AttemptError> {
    let mut request = RequestHeader::build(
        inbound.method.as_str(),
        inbound.target.as_bytes(),
        Some(inbound.headers.len() + 4),
    )
    .map_err(|e| e.to_string())?;
    for (name, value) in &inbound.headers {
        request
            .append_header(name.clone(), value.as_str())
            .map_err(|e| e.to_string())?;
    }
    let received = chrono::DateTime::from_timestamp_millis(record.created_ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    for (name, value) in [
        ("Content-Length", length.to_string()),
        ("Hookgate-Delivery-Id", record.id.clone()),
        ("Hookgate-Attempt", (record.attempts.len() + 1).to_string()),
        ("Hookgate-Received-At", received),
    ] {
        request
            .insert_header(name, value)
            .map_err(|e| e.to_string())?;
    }
    Ok(request)
}

/// `request`'s headers as a delivery's page shows them: what the signer added is masked
/// (a signature, or a token scheme's secret), except the values that only repeat the
/// message's id or timestamp; credentials are masked whatever added them.
fn masked_headers(
    request: &RequestHeader,
    signature_headers: &[String],
    record: &Record,
) -> Vec<(String, String)> {
    let timestamp = record.timestamp.to_string();
    request
        .headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("[not text]");
            let signed = signature_headers
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name.as_str()));
            let credential = matches!(name.as_str(), "authorization" | "proxy-authorization");
            let shown = if credential || (signed && value != record.id && value != timestamp) {
                "[masked]"
            } else {
                value
            };
            (name.as_str().to_string(), shown.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_shows_ids_and_times_but_not_signatures_or_credentials() {
        let record = Record {
            timestamp: 1_700_000_000,
            ..Record::json("msg_1".into(), "acme", 0)
        };
        let mut request = RequestHeader::build("POST", b"/", None).unwrap();
        for (name, value) in [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", "v1,c2VjcmV0"),
            ("X-Gitlab-Token", "msg_2"),
            ("Authorization", "Basic dTpw"),
            ("Content-Type", "application/json"),
        ] {
            request.insert_header(name, value).unwrap();
        }
        let signer = [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "X-Gitlab-Token",
        ]
        .map(String::from);
        let shown = masked_headers(&request, &signer, &record);
        let value = |name: &str| shown.iter().find(|(n, _)| n == name).unwrap().1.as_str();
        assert_eq!(value("webhook-id"), "msg_1");
        assert_eq!(value("webhook-timestamp"), "1700000000");
        assert_eq!(value("webhook-signature"), "[masked]");
        assert_eq!(value("x-gitlab-token"), "[masked]");
        assert_eq!(value("authorization"), "[masked]");
        assert_eq!(value("content-type"), "application/json");
    }
}
