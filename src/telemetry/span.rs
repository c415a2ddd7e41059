//! A span being recorded: its place in the trace, and (when sampled) what it records.
//! Dropping a [`Span`] ends it and hands it to the exporter.

use crate::clock::unix_nanos;
use std::borrow::Cow;

use super::context::{new_span_id, TraceContext};
use super::Tracer;

/// OTLP's `SpanKind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Cow<'static, str>),
    Int(i64),
    Bool(bool),
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Cow::Owned(s))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<u16> for Value {
    fn from(i: u16) -> Self {
        Value::Int(i64::from(i))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

pub type Attributes = Vec<(&'static str, Value)>;

#[derive(Debug)]
pub struct Event {
    pub time: u64,
    pub name: &'static str,
    pub attributes: Attributes,
}

/// What a sampled span records, as exported.
#[derive(Debug)]
pub struct SpanData {
    pub context: TraceContext,
    pub parent: Option<[u8; 8]>,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    /// Unix time in nanoseconds.
    pub start: u64,
    pub end: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    /// Set: the span's status is an error, with this description.
    pub error: Option<String>,
}

/// A span in progress. Not sampled, it only carries the context on (so the trace stays
/// whole downstream) and records nothing.
pub struct Span {
    context: TraceContext,
    data: Option<Box<SpanData>>,
    tracer: &'static Tracer,
}

impl Span {
    pub(super) fn start(
        tracer: &'static Tracer,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        context: TraceContext,
        parent: Option<[u8; 8]>,
    ) -> Self {
        let data = context.sampled.then(|| {
            Box::new(SpanData {
                context,
                parent,
                name: name.into(),
                kind,
                start: unix_nanos(),
                end: 0,
                attributes: Vec::with_capacity(12),
                events: Vec::new(),
                error: None,
            })
        });
        Span {
            context,
            data,
            tracer,
        }
    }

    /// The context a child or the next hop gets.
    pub fn context(&self) -> TraceContext {
        self.context
    }

    /// A span under this one.
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Span {
        let context = TraceContext {
            span_id: new_span_id(),
            ..self.context
        };
        Span::start(self.tracer, name, kind, context, Some(self.context.span_id))
    }

    /// Whether the span records anything: worth building attributes for.
    pub fn is_recording(&self) -> bool {
        self.data.is_some()
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(data) = &mut self.data {
            data.attributes.push((key, value.into()));
        }
    }

    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(data) = &mut self.data {
            data.name = name.into();
        }
    }

    /// Something that happened during the span, at this time.
    pub fn event(&mut self, name: &'static str, attributes: Attributes) {
        if let Some(data) = &mut self.data {
            data.events.push(Event {
                time: unix_nanos(),
                name,
                attributes,
            });
        }
    }

    /// Marks the span failed (status `ERROR`), with `error.type` set to `kind`.
    pub fn fail(&mut self, kind: impl Into<Value>, description: impl Into<String>) {
        if let Some(data) = &mut self.data {
            data.attributes.push(("error.type", kind.into()));
            data.error = Some(description.into());
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(mut data) = self.data.take() {
            data.end = unix_nanos();
            self.tracer.submit(data);
        }
    }
}
