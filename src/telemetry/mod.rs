//! OpenTelemetry traces: spans for inbound webhooks and outbound deliveries, W3C trace
//! context in and out, exported over OTLP/HTTP in protobuf ([`export`]).
//!
//! Off unless `telemetry.otlp.endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set: then
//! [`tracer`] is `None` and the request paths do no tracing work at all. Spans go to a
//! bounded queue; when it is full (a slow or absent collector) they are dropped and
//! counted, and no request ever waits for the exporter.

pub mod context;
pub mod export;
mod otlp;
pub mod span;

use std::borrow::Cow;
use std::sync::OnceLock;

use tokio::sync::mpsc;

use crate::config::TelemetryConfig;
use crate::metrics::{SpanLabels, METRICS};
pub use context::TraceContext;
use context::{new_span_id, new_trace_id};
use span::SpanData;
pub use span::{Span, SpanKind};

/// Spans waiting for the exporter, at most: about 2 MiB.
const QUEUED_SPANS: usize = 8192;

static TRACER: OnceLock<Tracer> = OnceLock::new();

/// The process's tracer, when traces are exported.
pub fn tracer() -> Option<&'static Tracer> {
    TRACER.get()
}

/// Turns tracing on as `config` says; the exporter to run as a background service, or
/// `None` when no OTLP endpoint is configured. Once per process: a later call (a config
/// reload) changes nothing.
/// Spans ended and queued, not yet taken by the exporter (a batch it holds counts as a
/// [`crate::drain::InFlight`] until it is posted).
pub fn unexported() -> usize {
    tracer().map_or(0, |t| t.spans.max_capacity() - t.spans.capacity())
}

pub fn install(config: &TelemetryConfig) -> Option<export::ExporterService> {
    let otlp = config.otlp.as_ref()?;
    let (sender, receiver) = mpsc::channel(QUEUED_SPANS);
    let tracer = Tracer {
        sampling: config.sampling,
        spans: sender,
    };
    TRACER.set(tracer).ok()?;
    Some(export::service(
        otlp.clone(),
        config.resource.clone(),
        receiver,
    ))
}

pub struct Tracer {
    /// The share of new traces recorded; a caller's sampled flag is followed instead.
    sampling: f64,
    spans: mpsc::Sender<Box<SpanData>>,
}

impl Tracer {
    /// Starts a span under `parent` (a caller's context), or at the root of a new trace.
    pub fn start(
        &'static self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Option<TraceContext>,
    ) -> Span {
        let context = match parent {
            Some(parent) => TraceContext {
                span_id: new_span_id(),
                ..parent
            },
            None => {
                let trace_id = new_trace_id();
                TraceContext {
                    trace_id,
                    span_id: new_span_id(),
                    sampled: self.samples(&trace_id),
                }
            }
        };
        Span::start(self, name, kind, context, parent.map(|p| p.span_id))
    }

    /// As [`Tracer::start`], under the context of a `traceparent` value if it is valid.
    pub fn start_from(
        &'static self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        traceparent: Option<&str>,
    ) -> Span {
        self.start(name, kind, traceparent.and_then(TraceContext::parse))
    }

    /// The ratio sampler of OpenTelemetry: the trace id's low 8 bytes against the ratio,
    /// so that every service with the same ratio decides the same for one trace.
    fn samples(&self, trace_id: &[u8; 16]) -> bool {
        if self.sampling >= 1.0 {
            return true;
        }
        let low = u64::from_be_bytes(trace_id[8..].try_into().expect("8 bytes"));
        (low >> 1) < (self.sampling * (1u64 << 63) as f64) as u64
    }

    /// A span that ended, for the exporter; dropped and counted if the queue is full.
    fn submit(&self, span: Box<SpanData>) {
        if self.spans.try_send(span).is_err() {
            METRICS
                .trace_spans
                .get_or_create(&SpanLabels {
                    outcome: "queue_full",
                })
                .inc();
        }
    }
}

/// A span's ids for a log line's `trace_id` and `span_id` fields (left out when `None`).
pub fn log_ids(context: Option<TraceContext>) -> (Option<String>, Option<String>) {
    match context {
        Some(c) => (Some(c.trace_id_hex()), Some(c.span_id_hex())),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(sampling: f64, capacity: usize) -> (&'static Tracer, mpsc::Receiver<Box<SpanData>>) {
        let (spans, receiver) = mpsc::channel(capacity);
        (Box::leak(Box::new(Tracer { sampling, spans })), receiver)
    }

    #[test]
    fn a_full_queue_drops_spans_and_never_waits() {
        let (tracer, mut receiver) = tracer(1.0, 2);
        let dropped = || {
            METRICS
                .trace_spans
                .get_or_create(&SpanLabels {
                    outcome: "queue_full",
                })
                .get()
        };
        let before = dropped();
        for _ in 0..5 {
            let root = tracer.start("a", SpanKind::Server, None);
            drop(root);
        }
        assert_eq!(dropped() - before, 3);
        let first = receiver.try_recv().unwrap();
        assert_eq!(first.name, "a");
        assert!(first.end >= first.start && first.parent.is_none());
    }

    #[test]
    fn sampling_is_parent_based_and_by_ratio_otherwise() {
        let (never, mut receiver) = tracer(0.0, 16);
        let root = never.start("root", SpanKind::Server, None);
        assert!(!root.is_recording() && !root.context().sampled);
        let child = root.child("child", SpanKind::Client);
        assert_eq!(child.context().trace_id, root.context().trace_id);
        drop((root, child));
        assert!(
            receiver.try_recv().is_err(),
            "nothing unsampled is exported"
        );
        let caller = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let span = never.start("followed", SpanKind::Server, caller);
        assert!(span.is_recording());
        assert_eq!(span.context().trace_id, caller.unwrap().trace_id);
        drop(span);
        assert_eq!(
            receiver.try_recv().unwrap().parent,
            Some(caller.unwrap().span_id)
        );
        let (half, _receiver) = tracer(0.5, 1);
        let kept = (0..10_000)
            .filter(|_| half.start("r", SpanKind::Server, None).context().sampled)
            .count();
        assert!((4_500..5_500).contains(&kept), "{kept}");
    }
}
