//! What an inbound route does besides verifying: the provider's handshake it answers, and
//! how a verified webhook reaches the app (`deliver: proxy` or `deliver: queue`).

use super::{DeliveryPolicy, Upstream};

/// `handshake:` on a route: which provider's ownership check it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Slack,
    Zoom,
    X,
    Meta,
    Dropbox,
    MsGraph,
    Okta,
}

impl Handshake {
    pub const ALL: [Handshake; 7] = [
        Handshake::Slack,
        Handshake::Zoom,
        Handshake::X,
        Handshake::Meta,
        Handshake::Dropbox,
        Handshake::MsGraph,
        Handshake::Okta,
    ];

    /// Its name in the config file and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Handshake::Slack => "slack",
            Handshake::Zoom => "zoom",
            Handshake::X => "x",
            Handshake::Meta => "meta",
            Handshake::Dropbox => "dropbox",
            Handshake::MsGraph => "msgraph",
            Handshake::Okta => "okta",
        }
    }
}

/// `deliver:` on a route.
#[derive(Debug, Clone)]
pub enum Deliver {
    /// Forwarded while the provider waits; the provider gets the app's answer.
    Proxy,
    /// Stored durably, acknowledged, then delivered to the app by the worker.
    Queue(Box<QueuedRoute>),
}

/// A `deliver: queue` route as the delivery worker sees it (an entry of
/// `OutboundConfig::routes`).
#[derive(Debug, Clone)]
pub struct QueuedRoute {
    /// The route's name.
    pub name: String,
    /// The route's own `upstream`, or `inbound.upstream`.
    pub upstream: Upstream,
    /// `queue: { retry, concurrency, rate_limit, circuit, timeout }`.
    pub policy: DeliveryPolicy,
    /// `queue.dead_on_4xx`: a 4xx other than 408, 425 and 429 ends the delivery (dead),
    /// since sending the same request again gets the same answer.
    pub dead_on_4xx: bool,
    /// `ack_status`: what the provider gets once the webhook is stored.
    pub ack_status: u16,
    /// `queue.max_depth`: webhooks waiting for the app (pending or scheduled) at most;
    /// beyond it the provider gets `503 queue_unavailable`.
    pub max_depth: Option<u64>,
    /// `queue.order`: webhooks with the same key reach the app one at a time, in the order
    /// they were stored.
    pub order: Option<OrderSource>,
}

/// Where a webhook's `queue.order` key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderSource {
    /// `header:NAME` (lowercase).
    Header(String),
    /// `json:/pointer` into the body.
    Json(String),
    /// `route`: the whole route is one line.
    Route,
}

impl QueuedRoute {
    /// The name its messages are kept under in the queue: never an endpoint's, whose names
    /// hold no `:`.
    pub fn queue_name(route: &str) -> String {
        format!("route:{route}")
    }
}
