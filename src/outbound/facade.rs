//! The outbound side as the admin port sees it. The admin API goes through this one
//! module, not into the endpoints, the worker or the subscriptions' internals: what the
//! configured endpoints (and the `deliver: queue` routes' apps) are called and where they
//! go, a per-request destination's name,
//! and the subscriptions service with the two helpers its API needs.

pub use super::destinations::destination_id;
pub use super::subscriptions::index::pattern_matches;
pub use super::subscriptions::input::object as subscription_fields;
pub use super::subscriptions::{view as subscription_view, Subscriptions};

use super::live::LiveOutbound;
pub use super::pacing::Health;

/// The configured endpoints, as the running config (reloaded or not) says.
#[derive(Clone)]
pub struct Endpoints(LiveOutbound);

impl Endpoints {
    pub fn new(live: LiveOutbound) -> Self {
        Endpoints(live)
    }

    /// Every configured endpoint's name, in the config's order.
    pub fn names(&self) -> Vec<String> {
        let live = self.0.load();
        live.endpoints
            .iter()
            .map(|e| e.config.name.clone())
            .collect()
    }

    /// A configured endpoint's health as this process has seen it.
    pub fn health(&self, name: &str, now_ms: u64) -> Option<Health> {
        let live = self.0.load();
        let found = live.endpoints.iter().find(|e| e.config.name == name);
        found.map(|e| e.pacing.health(now_ms))
    }

    /// The `deliver: queue` routes' names, in the config's order.
    pub fn queued_routes(&self) -> Vec<String> {
        let live = self.0.load();
        live.routes
            .iter()
            .filter_map(|e| e.config.name.strip_prefix("route:"))
            .map(str::to_string)
            .collect()
    }

    /// The health of a `deliver: queue` route's app as this process has seen it.
    pub fn route_health(&self, name: &str, now_ms: u64) -> Option<Health> {
        let live = self.0.load();
        let queue_name = crate::config::QueuedRoute::queue_name(name);
        let found = live.routes.iter().find(|e| e.config.name == queue_name);
        found.map(|e| e.pacing.health(now_ms))
    }

    /// `GET /admin/event-types`: the catalog as the running config says.
    pub fn event_types(&self) -> serde_json::Value {
        self.0.load().catalog.view()
    }

    /// A subscription's `event_types` against the catalog (`outbound.events.validate`).
    pub fn check_subscription(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), crate::error_response::ErrorResponse> {
        self.0.load().catalog.check_subscription(fields)
    }

    /// The URL a configured endpoint delivers to.
    pub fn url(&self, name: &str) -> Option<String> {
        let live = self.0.load();
        let found = live.endpoints.iter().find(|e| e.config.name == name);
        found.map(|e| e.config.url.to_string())
    }
}
