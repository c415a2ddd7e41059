//! What the worker and sync deliveries both do with an attempt's outcome: count the
//! message's fate, and disable an endpoint that asked never to be sent to again.

use std::sync::Arc;

use crate::clock::now_ms;
use crate::metrics::METRICS;
use crate::store::queue::{EndpointState, Next, Queue};

/// Counts a message's fate after an attempt; its name for logs.
pub fn record_message_outcome(endpoint: &str, created_ms: u64, next: Next) -> &'static str {
    let outcome = match next {
        Next::Delivered => "delivered",
        Next::RetryAt(_) => "retry_scheduled",
        Next::Dead => "dead",
    };
    METRICS.record_outbound_message(endpoint, outcome);
    if matches!(next, Next::Delivered) {
        METRICS.record_outbound_end_to_end(now_ms().saturating_sub(created_ms));
    }
    outcome
}

/// Stops deliveries to an endpoint until an operator enables it; it keeps accepting.
pub async fn disable_endpoint(queue: &Arc<dyn Queue>, endpoint: &str, reason: &str) {
    tracing::warn!(endpoint, reason, "endpoint disabled");
    let state = EndpointState {
        enabled: false,
        reason: reason.to_string(),
        since_ms: now_ms(),
        paused_until_ms: None,
    };
    if let Err(e) = queue.set_endpoint_state(endpoint, &state).await {
        tracing::error!(endpoint, error = %e, "could not record the endpoint's state");
    }
}

/// Shares an opened circuit: every replica holds the endpoint's messages until `until_ms`,
/// not only the one whose attempts failed.
pub async fn pause_endpoint(queue: &Arc<dyn Queue>, endpoint: &str, reason: &str, until_ms: u64) {
    let state = EndpointState {
        enabled: true,
        reason: format!("circuit open: {reason}"),
        since_ms: now_ms(),
        paused_until_ms: Some(until_ms),
    };
    if let Err(e) = queue.set_endpoint_state(endpoint, &state).await {
        tracing::error!(endpoint, error = %e, "could not share the endpoint's open circuit");
    }
}
