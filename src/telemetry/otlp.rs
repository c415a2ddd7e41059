//! Spans as an OTLP `ExportTraceServiceRequest` in protobuf, written by hand: the few
//! messages of `opentelemetry/proto/trace/v1/trace.proto` need a varint and a length
//! prefix, not a code generator and its dependencies. The tests decode the output with
//! the official `opentelemetry-proto` package.

use super::span::{Event, SpanData, Value};

/// Field numbers of the messages written here (from the OTLP `.proto` files).
mod field {
    // ExportTraceServiceRequest
    pub const RESOURCE_SPANS: u32 = 1;
    // ResourceSpans
    pub const RESOURCE: u32 = 1;
    pub const SCOPE_SPANS: u32 = 2;
    // Resource, Span, Event: attributes
    pub const RESOURCE_ATTRIBUTES: u32 = 1;
    // ScopeSpans
    pub const SCOPE: u32 = 1;
    pub const SPANS: u32 = 2;
    // InstrumentationScope
    pub const SCOPE_NAME: u32 = 1;
    pub const SCOPE_VERSION: u32 = 2;
    // Span
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const PARENT_SPAN_ID: u32 = 4;
    pub const NAME: u32 = 5;
    pub const KIND: u32 = 6;
    pub const START: u32 = 7;
    pub const END: u32 = 8;
    pub const SPAN_ATTRIBUTES: u32 = 9;
    pub const EVENTS: u32 = 11;
    pub const STATUS: u32 = 15;
    pub const FLAGS: u32 = 16;
    // Span.Event
    pub const EVENT_TIME: u32 = 1;
    pub const EVENT_NAME: u32 = 2;
    pub const EVENT_ATTRIBUTES: u32 = 3;
    // Status
    pub const STATUS_MESSAGE: u32 = 2;
    pub const STATUS_CODE: u32 = 3;
    // KeyValue
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
    // AnyValue
    pub const STRING_VALUE: u32 = 1;
    pub const BOOL_VALUE: u32 = 2;
    pub const INT_VALUE: u32 = 3;
}

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;
const WIRE_FIXED32: u32 = 5;
/// `Status.code` ERROR.
const STATUS_ERROR: u64 = 2;
/// `Span.flags`: the W3C trace flags (bits 0-7); every exported span is sampled.
const FLAG_SAMPLED: u32 = 1;

/// `value` as a protobuf varint: the bytes, and how many of them.
fn varint(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut n = 0;
    while value >= 0x80 {
        bytes[n] = value as u8 | 0x80;
        value >>= 7;
        n += 1;
    }
    bytes[n] = value as u8;
    (bytes, n + 1)
}

/// A protobuf message being written.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, value: u64) {
        let (bytes, n) = varint(value);
        self.0.extend_from_slice(&bytes[..n]);
    }

    fn tag(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.tag(field, WIRE_LEN);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn uint(&mut self, field: u32, value: u64) {
        self.tag(field, WIRE_VARINT);
        self.varint(value);
    }

    fn fixed64(&mut self, field: u32, value: u64) {
        self.tag(field, WIRE_FIXED64);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn fixed32(&mut self, field: u32, value: u32) {
        self.tag(field, WIRE_FIXED32);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    /// A nested message: `write` writes it in place, then its length (known only then) is
    /// moved in front of it. No buffer per message: a batch is one allocation.
    fn message(&mut self, field: u32, write: impl FnOnce(&mut Writer)) {
        self.tag(field, WIRE_LEN);
        let start = self.0.len();
        write(self);
        let (length, n) = varint((self.0.len() - start) as u64);
        self.0.extend_from_slice(&length[..n]);
        self.0[start..].rotate_right(n);
    }

    fn key_value(&mut self, field: u32, key: &str, value: &Value) {
        self.message(field, |kv| {
            kv.string(field::KEY, key);
            kv.message(field::VALUE, |any| match value {
                Value::Str(s) => any.string(field::STRING_VALUE, s),
                Value::Bool(b) => any.uint(field::BOOL_VALUE, u64::from(*b)),
                Value::Int(i) => any.uint(field::INT_VALUE, *i as u64),
            });
        });
    }
}

/// The request body for `POST /v1/traces`: one resource, one scope, these spans.
pub fn export_request(resource: &[(String, String)], spans: &[Box<SpanData>]) -> Vec<u8> {
    let mut request = Writer(Vec::with_capacity(512 + spans.len() * 600));
    request.message(field::RESOURCE_SPANS, |rs| {
        rs.message(field::RESOURCE, |r| {
            for (key, value) in resource {
                r.key_value(field::RESOURCE_ATTRIBUTES, key, &Value::from(value.clone()));
            }
        });
        rs.message(field::SCOPE_SPANS, |ss| {
            ss.message(field::SCOPE, |scope| {
                scope.string(field::SCOPE_NAME, "hookgate");
                scope.string(field::SCOPE_VERSION, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                ss.message(field::SPANS, |s| write_span(s, span));
            }
        });
    });
    request.0
}

fn write_span(s: &mut Writer, span: &SpanData) {
    s.bytes(field::TRACE_ID, &span.context.trace_id);
    s.bytes(field::SPAN_ID, &span.context.span_id);
    if let Some(parent) = &span.parent {
        s.bytes(field::PARENT_SPAN_ID, parent);
    }
    s.string(field::NAME, &span.name);
    s.uint(field::KIND, span.kind as u64);
    s.fixed64(field::START, span.start);
    s.fixed64(field::END, span.end.max(span.start));
    for (key, value) in &span.attributes {
        s.key_value(field::SPAN_ATTRIBUTES, key, value);
    }
    for event in &span.events {
        s.message(field::EVENTS, |e| write_event(e, event));
    }
    if let Some(message) = &span.error {
        s.message(field::STATUS, |status| {
            status.string(field::STATUS_MESSAGE, message);
            status.uint(field::STATUS_CODE, STATUS_ERROR);
        });
    }
    s.fixed32(field::FLAGS, FLAG_SAMPLED);
}

fn write_event(e: &mut Writer, event: &Event) {
    e.fixed64(field::EVENT_TIME, event.time);
    e.string(field::EVENT_NAME, event.name);
    for (key, value) in &event.attributes {
        e.key_value(field::EVENT_ATTRIBUTES, key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_tags_are_protobuf() {
        let mut w = Writer::default();
        w.uint(1, 300);
        assert_eq!(w.0, [0x08, 0xac, 0x02]);
        let mut w = Writer::default();
        w.string(2, "hi");
        assert_eq!(w.0, [0x12, 2, b'h', b'i']);
        // A negative int64 is ten bytes, as protobuf writes it.
        let mut w = Writer::default();
        w.uint(3, -1i64 as u64);
        assert_eq!(w.0.len(), 11);
        // A nested message's length goes in front of it, as a varint of 2 bytes here.
        let mut w = Writer::default();
        w.message(1, |inner| inner.bytes(2, &[7u8; 200]));
        let mut expected = vec![0x0a, 0xcb, 0x01, 0x12, 0xc8, 0x01];
        expected.extend([7u8; 200]);
        assert_eq!(w.0, expected);
    }
}
