//! Before the inbound path: admit a client connection, or refuse it.
//!
//! Pingora accepts every connection and, for plaintext HTTP/2 (h2c) detection, waits with
//! no deadline for its first 24 bytes; a client that connects and sends nothing holds a
//! file descriptor for ever. This wrapper counts open connections (overall and per client
//! address), answers `503` to those over the cap, and gives the h2c sniff the header
//! deadline. The request head deadline itself is applied per request in [`super`].

use std::collections::HashMap;
use std::net::IpAddr;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;

use crate::clock::now_ms;
use crate::config::ConnectionLimits;
use crate::error_response::ErrorResponse;
use crate::inbound::InboundApp;
use crate::logging::Throttle;
use crate::metrics::METRICS;

/// A flood is refused connection by connection, but logged once a second.
static REFUSAL_LOG: Throttle = Throttle::new();

/// The first bytes of every plaintext HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The inbound port's `ServerApp`: admission, then HTTP/1.1 or h2 by the first bytes.
pub struct InboundService {
    http1: Arc<InboundApp>,
    h2c: Arc<H2c>,
    limits: ConnectionLimits,
    max_connections: u32,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    total: u32,
    by_ip: HashMap<IpAddr, u32>,
}

/// Holds one admitted connection's place; gives it back when dropped.
struct Slot<'a> {
    service: &'a InboundService,
    ip: Option<IpAddr>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut open = self.service.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(ip) = self.ip {
            if let Some(count) = open.by_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.by_ip.remove(&ip);
                }
            }
        }
        METRICS.inbound_connections.set(i64::from(open.total));
    }
}

impl InboundService {
    pub fn new(app: Arc<InboundApp>) -> Self {
        let limits = app.config.limits.clone();
        let max_connections = connection_cap(limits.max_connections);
        InboundService {
            h2c: Arc::new(H2c::new(app.clone())),
            http1: app,
            limits,
            max_connections,
            open: Mutex::new(OpenConnections::default()),
        }
    }

    /// Takes a place for a connection from `ip`, or says which cap it hit.
    fn admit(&self, ip: Option<IpAddr>) -> Result<Slot<'_>, &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_connections {
            return Err("max_connections");
        }
        let per_ip = self.limits.max_connections_per_ip.and(ip);
        if let Some(ip) = per_ip {
            let count = open.by_ip.entry(ip).or_default();
            if *count >= self.limits.max_connections_per_ip.unwrap_or(u32::MAX) {
                return Err("max_connections_per_ip");
            }
            *count += 1;
        }
        open.total += 1;
        METRICS.inbound_connections.set(i64::from(open.total));
        Ok(Slot {
            service: self,
            ip: per_ip,
        })
    }
}

#[async_trait]
impl ServerApp for InboundService {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let _slot = match self.admit(ip) {
            Ok(slot) => slot,
            Err(cap) => {
                METRICS.record_connection_closed(cap);
                if let Some(skipped) = REFUSAL_LOG.allow(now_ms()) {
                    tracing::warn!(client = %ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string()), cap, skipped, "refusing connections: too many open (counted in hookgate_inbound_connections_closed_total; logged once a second)");
                }
                refuse(&mut stream, cap).await;
                return None;
            }
        };
        if stream.get_ssl_digest().is_some() {
            // TLS: ALPN chose the protocol.
            if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
                return ServerApp::process_new(&self.http1, stream, shutdown).await;
            }
            self.http1.serve_http1(stream, shutdown).await;
            return None;
        }
        match tokio::time::timeout(
            self.limits.header_timeout,
            opens_with_h2_preface(&mut stream),
        )
        .await
        {
            Ok(Ok(true)) => ServerApp::process_new(&self.h2c, stream, shutdown).await,
            Ok(Ok(false)) => {
                self.http1.serve_http1(stream, shutdown).await;
                None
            }
            Ok(Err(_)) => None,
            Err(_) => {
                METRICS.record_connection_closed("header_timeout");
                None
            }
        }
    }
}

/// Whether a plaintext connection starts with the h2c preface. Pingora's own check reads
/// exactly 24 bytes, so a shorter HTTP/1 request or a trickle would wait for bytes that
/// never come; this one peeks one byte more at a time and stops at the first that differs
/// (the second byte of `POST`). Peeked bytes are put back for the HTTP parser.
async fn opens_with_h2_preface(stream: &mut Stream) -> std::io::Result<bool> {
    let mut peeked = [0u8; H2_PREFACE.len()];
    for len in 1..=H2_PREFACE.len() {
        if !stream.try_peek(&mut peeked[..len]).await? || peeked[..len] != H2_PREFACE[..len] {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Descriptors kept for the admin port, the store, the outbound side and the app.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The cap on client connections. Each takes a descriptor, and one more while its request
/// is with the app. Past the open-files limit every port would stall (`Too many open
/// files`) instead of refusing the excess with a 503, so the default stays under it, and a
/// configured cap above it is warned about at start.
fn connection_cap(configured: Option<u32>) -> u32 {
    let soft_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        });
    let fits = soft_limit.map(|limit| limit.saturating_sub(RESERVED_DESCRIPTORS) / 2);
    match (configured, fits) {
        (Some(cap), Some(fits)) if u64::from(cap) > fits => {
            tracing::warn!(
                max_connections = cap,
                open_files_limit = soft_limit,
                "inbound.max_connections is more than the open-files limit leaves room for; raise the limit (ulimit -n) or lower max_connections"
            );
            cap
        }
        (Some(cap), _) => cap,
        (None, Some(fits)) => fits.clamp(1, 10_000) as u32,
        (None, None) => 10_000,
    }
}

/// Answers `503` on a connection over a cap, without reading its request, and closes it.
async fn refuse(stream: &mut Stream, cap: &'static str) {
    let answer = ErrorResponse::new(
        503,
        "too_many_connections",
        format!("hookgate holds as many client connections as {cap} allows; retry shortly"),
    );
    let body = answer.body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// The same app, for a connection that opened with the h2c preface: Pingora's h2 server
/// then runs each stream through [`InboundApp`].
struct H2c {
    app: Arc<InboundApp>,
    options: HttpServerOptions,
}

impl H2c {
    fn new(app: Arc<InboundApp>) -> Self {
        let mut options = app.server_options.clone();
        options.h2c = true;
        H2c { app, options }
    }
}

#[async_trait]
impl HttpServerApp for H2c {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.app.process_new_http(session, shutdown).await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}
