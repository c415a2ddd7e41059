//! The label sets of hookgate's metric families.

use prometheus_client::encoding::EncodeLabelSet;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    /// `forwarded`, `duplicate`, or the error code of hookgate's own answer.
    pub outcome: &'static str,
    /// The status the client got.
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub route: &'static str,
    /// The stable error code of the answer, e.g. `body_too_large`.
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerifiedLabels {
    pub route: &'static str,
    /// Which configured secret matched (0-based): watch an old one fall to zero before removing it.
    pub secret: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    pub route: &'static str,
    /// The route's `handshake:` value.
    pub provider: &'static str,
    /// `answered` or `refused`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboundQueueLabels {
    pub route: String,
    /// `pending`, `scheduled` or `dead`, as the outbound queue's.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueuedRouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub route: &'static str,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboundLabels {
    pub endpoint: String,
    /// `delivered`, `retry_scheduled` or `dead`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The first [`MAX_EVENT_TYPES`] types seen, then `other`: the app names them.
    pub event_type: String,
    /// `fanned_out`, `unmatched` or `duplicate`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabels {
    pub event_type: String,
}

/// Distinct event types given a label of their own.
pub const MAX_EVENT_TYPES: usize = 200;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub endpoint: String,
    /// `2xx`...`5xx`, or `error` when no answer came.
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub endpoint: String,
    /// `pending` (due now), `scheduled` (waiting for a retry) or `dead`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Why hookgate closed a client connection itself: `max_connections`,
    /// `max_connections_per_ip`, `header_timeout`, `bad_request`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// The shared store's operation: `dedupe_claim`, `rate_limit`, `queue_claim`...
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpanLabels {
    /// `exported`, `queue_full` (dropped: the export queue was full) or `export_failed`
    /// (dropped: the collector refused the batch or could not be reached).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied`, `refused` or `held`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationalLabels {
    /// `subscription.disabled`, `delivery.failing`...
    pub event_type: &'static str,
    /// `published`, `unsubscribed` (nothing takes it), `dropped` (the backlog was full) or
    /// `failed` (not stored).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `ok` or `failed` (refused, no answer, or an answer without a token).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HistoryLabels {
    /// `kept`, `swept`, `dropped` (the backlog was full) or `failed` (not written).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortalLabels {
    /// `served`, or why the token was refused: `invalid`, `expired`, `revoked`, `read_only`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    /// The first 16 hex digits of the SHA-256 of the config file running.
    pub hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SealedLabels {
    /// Where the value is kept, such as `subscriptions`.
    pub table: &'static str,
}
