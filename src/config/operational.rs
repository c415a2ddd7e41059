//! What the sender's service keeps and says about its deliveries: `outbound.operational`
//! (hookgate's own events, for the vendor to pass on to its customers) and
//! `outbound.history` (delivered messages, findable for a while).

use std::time::Duration;

/// Subscriptions of this tenant receive the operational events (and cause none themselves).
pub const OPERATIONAL_TENANT: &str = "hookgate";
/// `outbound.operational.url` is delivered to as an endpoint of this name.
pub const OPERATIONAL_ENDPOINT: &str = "operational";

#[derive(Debug, Clone)]
pub struct OperationalConfig {
    /// `delivery.failing` after this many failed attempts in a row.
    pub failing_after: u32,
    /// At most one `delivery.failing` per subscription or endpoint in this long.
    pub failing_window: Duration,
}

impl Default for OperationalConfig {
    fn default() -> Self {
        OperationalConfig {
            failing_after: 5,
            failing_window: Duration::from_secs(3600),
        }
    }
}

/// `outbound.history`: how long delivered messages stay findable, and within what size.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub retention: Duration,
    /// Their payloads' start: at most `retention`; zero keeps none.
    pub payload_retention: Duration,
    /// Beyond this the oldest rows go first, whatever their age.
    pub max_bytes: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            payload_retention: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
        }
    }
}
