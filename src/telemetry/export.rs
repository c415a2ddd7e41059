//! The OTLP/HTTP exporter: a background service that takes ended spans off the queue and
//! posts them in batches to `<endpoint>/v1/traces` as protobuf, one batch at a time.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService, GenBackgroundService};
use pingora::upstreams::peer::HttpPeer;
use tokio::sync::mpsc;

use super::otlp::export_request;
use super::span::SpanData;
use crate::config::OtlpConfig;
use crate::http_io::{exchange, read_answer};
use crate::metrics::{SpanLabels, METRICS};

/// Most spans in one request.
const MAX_BATCH: usize = 512;
/// How long a batch waits for more spans before it is sent.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// How often a batch being filled takes what was queued meanwhile.
const FILL_TICK: Duration = Duration::from_millis(20);
/// Most of a collector's answer that is read.
const ANSWER_LIMIT: usize = 64 * 1024;

pub type ExporterService = GenBackgroundService<Exporter>;

pub struct Exporter {
    config: OtlpConfig,
    resource: Vec<(String, String)>,
    /// Taken by the service when it starts.
    spans: Mutex<Option<mpsc::Receiver<Box<SpanData>>>>,
}

pub fn service(
    config: OtlpConfig,
    resource: Vec<(String, String)>,
    spans: mpsc::Receiver<Box<SpanData>>,
) -> ExporterService {
    background_service(
        "otlp exporter",
        Exporter {
            config,
            resource,
            spans: Mutex::new(Some(spans)),
        },
    )
}

fn count(outcome: &'static str, spans: usize) {
    METRICS
        .trace_spans
        .get_or_create(&SpanLabels { outcome })
        .inc_by(spans as u64);
}

#[async_trait]
impl BackgroundService for Exporter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut spans) = self.spans.lock().expect("not poisoned").take() else {
            return;
        };
        let connector = Connector::new(None);
        let mut failing = false;
        loop {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let stopping = tokio::select! {
                received = spans.recv_many(&mut batch, MAX_BATCH) => received == 0,
                _ = shutdown.changed() => true,
            };
            // Taken from the queue, the batch counts as under way until it is posted.
            let _posting = crate::drain::InFlight::begin();
            // Fill the batch for a while: fewer, larger requests. Looked at every few
            // milliseconds rather than waited on, so that a request ending a span never
            // wakes this thread (a wake-up per span cost more than the span).
            let deadline = tokio::time::Instant::now() + BATCH_DELAY;
            loop {
                while batch.len() < MAX_BATCH {
                    match spans.try_recv() {
                        Ok(span) => batch.push(span),
                        Err(_) => break,
                    }
                }
                if stopping || batch.len() >= MAX_BATCH || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(FILL_TICK).await;
            }
            if !batch.is_empty() {
                let body = export_request(&self.resource, &batch);
                match tokio::time::timeout(self.config.timeout, self.post(&connector, body)).await {
                    Ok(Ok(())) => {
                        count("exported", batch.len());
                        if failing {
                            tracing::info!("OTLP export works again");
                            failing = false;
                        }
                    }
                    result => {
                        count("export_failed", batch.len());
                        if !failing {
                            let why = match result {
                                Ok(Err(e)) => e,
                                _ => format!("no answer within {:?}", self.config.timeout),
                            };
                            tracing::warn!(endpoint = %self.config.endpoint, error = %why, spans = batch.len(), "OTLP export failed: spans dropped");
                            failing = true;
                        }
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }
}

impl Exporter {
    /// One `POST /v1/traces`; an answer other than 2xx is a failure.
    async fn post(&self, connector: &Connector, body: Vec<u8>) -> Result<(), String> {
        let endpoint = &self.config.endpoint;
        let addr: SocketAddr = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", endpoint.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", endpoint.host))?;
        let mut peer = HttpPeer::new(addr, endpoint.tls, endpoint.host.clone());
        peer.options.connection_timeout = Some(self.config.timeout);
        peer.options.read_timeout = Some(self.config.timeout);
        peer.options.write_timeout = Some(self.config.timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(30));
        let mut request = RequestHeader::build("POST", endpoint.path.as_bytes(), None)
            .map_err(|e| e.to_string())?;
        let host = format!("{}:{}", endpoint.host, endpoint.port);
        let fixed = [
            ("Host", host.as_str()),
            ("Content-Type", "application/x-protobuf"),
            (
                "User-Agent",
                concat!("hookgate/", env!("CARGO_PKG_VERSION")),
            ),
        ];
        for (name, value) in fixed {
            request
                .insert_header(name, value)
                .map_err(|e| e.to_string())?;
        }
        request
            .insert_header("Content-Length", body.len().to_string())
            .map_err(|e| e.to_string())?;
        for (name, value) in &self.config.headers {
            // Not the error: it would print the value, a credential.
            request
                .insert_header(name.clone(), value.expose())
                .map_err(|_| format!("telemetry.otlp.headers.{name} is not a valid header"))?;
        }
        let (mut http, _reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| e.to_string())?;
        exchange(&mut http, request, Bytes::from(body)).await?;
        let status = http
            .response_header()
            .ok_or("no response header")?
            .status
            .as_u16();
        read_answer(connector, http, &peer, ANSWER_LIMIT).await;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("the collector answered {status}"))
        }
    }
}
