//! `mode: sync`: the message is delivered while the app waits, and the app gets the
//! receiver's real status and body. A few attempts fit in a short budget; when they are
//! spent, the failure is the answer, or with `sync_fallback: queue` the message joins the
//! queue (202) and the endpoint's retry schedule goes on from there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Response;

use super::deliver::{Endpoint, Outcome};
use super::outcome::{disable_endpoint, pause_endpoint, record_message_outcome};
use super::retry::next_step;
use super::{accepted, Message, OutboundApp};
use crate::clock::now_ms;
use crate::config::SyncConfig;
use crate::error_response::ErrorResponse;
use crate::metrics::METRICS;
use crate::store::queue::{Next, State};
use crate::telemetry::log_ids;

/// The pause after the first failed sync attempt; it doubles after each one.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Why a sync delivery ended without a usable answer from the receiver.
enum Unanswered {
    /// Every attempt failed; the last one's outcome.
    Failed(Outcome),
    /// No attempt was made: the endpoint is disabled, or paused or busy past the budget.
    HeldBack(ErrorResponse),
}

impl OutboundApp {
    pub(super) async fn deliver_now(
        &self,
        mut message: Message,
        sync: &SyncConfig,
    ) -> Result<Response<Vec<u8>>, ErrorResponse> {
        let endpoint = message
            .endpoint
            .clone()
            .expect("only configured endpoints are in sync mode");
        let unanswered = match self.attempts(&endpoint, &mut message, sync).await {
            Ok(outcome) if outcome.success => {
                record_message_outcome(
                    &endpoint.config.name,
                    message.record.created_ms,
                    Next::Delivered,
                );
                return Ok(relay(&message, &outcome));
            }
            Ok(outcome) if outcome.gone => {
                // The receiver asks never to be sent to again: no queue can help.
                disable_endpoint(
                    &self.queue,
                    &endpoint.config.name,
                    "the receiver answered 410 Gone",
                )
                .await;
                record_message_outcome(
                    &endpoint.config.name,
                    message.record.created_ms,
                    Next::Dead,
                );
                return Ok(relay(&message, &outcome));
            }
            Ok(outcome) => Unanswered::Failed(outcome),
            Err(held_back) => Unanswered::HeldBack(held_back),
        };
        if sync.fallback_queue {
            return self.fall_back(&endpoint, message, unanswered).await;
        }
        METRICS.record_outbound_message(&endpoint.config.name, "sync_failed");
        match unanswered {
            Unanswered::Failed(outcome) if outcome.attempt.status.is_some() => {
                Ok(relay(&message, &outcome))
            }
            Unanswered::Failed(outcome) => Err(ErrorResponse::new(
                502,
                "delivery_failed",
                format!(
                    "{} attempt(s) to {} failed; the last: {}",
                    message.record.round_attempts,
                    endpoint.config.name,
                    outcome.attempt.error.unwrap_or_default()
                ),
            )
            .with_header("Hookgate-Delivery-Id", message.record.id.clone())),
            Unanswered::HeldBack(answer) => Err(answer),
        }
    }

    /// Attempts the message until it succeeds, the receiver refuses it for good, or the
    /// attempts or the budget run out; the last outcome. Each attempt is recorded on the
    /// message and respects the endpoint's concurrency, rate and circuit breaker.
    async fn attempts(
        &self,
        endpoint: &Arc<Endpoint>,
        message: &mut Message,
        sync: &SyncConfig,
    ) -> Result<Outcome, ErrorResponse> {
        let name = &endpoint.config.name;
        if self.is_disabled(name).await {
            return Err(ErrorResponse::new(
                503,
                "endpoint_disabled",
                format!("endpoint {name} is disabled; enable it with `hookgate endpoints enable {name}`"),
            ));
        }
        let deadline = Instant::now() + sync.budget;
        let mut pause = FIRST_PAUSE;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let admitted = endpoint.pacing.admit(now_ms(), 1).await;
            let Some(slot) = admitted.go.into_iter().next() else {
                if admitted.wait < remaining {
                    tokio::time::sleep(admitted.wait).await;
                    continue;
                }
                return Err(ErrorResponse::new(
                    503,
                    "endpoint_paused",
                    format!("endpoint {name} is paused or at its limits; try again later"),
                )
                .with_header("Retry-After", admitted.wait.as_secs().max(1).to_string()));
            };
            let timeout = endpoint.config.policy.retry.timeout.min(remaining);
            let record = &mut message.record;
            let outcome = endpoint
                .attempt(&self.connector, record, &message.body, timeout)
                .await;
            slot.release().await;
            if let Some((reason, until_ms)) = endpoint.record_outcome(&outcome, now_ms()) {
                pause_endpoint(&self.queue, name, &reason, until_ms).await;
            }
            record.round_attempts += 1;
            record.attempts.push(outcome.attempt.clone());
            let (trace_id, span_id) = log_ids(outcome.trace);
            tracing::info!(endpoint = %name, delivery_id = %record.id, status = outcome.attempt.status, error = outcome.attempt.error.as_deref(), trace_id, span_id, "sync delivery attempt");
            let wait = outcome.retry_after.unwrap_or(pause);
            if outcome.success
                || outcome.gone
                || record.round_attempts >= sync.attempts
                || Instant::now() + wait >= deadline
            {
                return Ok(outcome);
            }
            tokio::time::sleep(wait).await;
            pause *= 2;
        }
    }

    async fn is_disabled(&self, endpoint: &str) -> bool {
        match self.queue.endpoint_states().await {
            Ok(states) => states
                .iter()
                .any(|(name, state)| name == endpoint && !state.enabled),
            Err(_) => false,
        }
    }

    /// `sync_fallback: queue`: the sync attempts count as the first of the endpoint's
    /// schedule, and the queue goes on from there (or keeps the message dead, for replay,
    /// if the schedule has no more attempts).
    async fn fall_back(
        &self,
        endpoint: &Endpoint,
        mut message: Message,
        unanswered: Unanswered,
    ) -> Result<Response<Vec<u8>>, ErrorResponse> {
        let now = now_ms();
        let record = &mut message.record;
        let next = match &unanswered {
            Unanswered::Failed(outcome) => {
                record.round_attempts = 1;
                next_step(
                    &endpoint.config.policy.retry,
                    1,
                    outcome,
                    self.time_scale,
                    now,
                )
            }
            Unanswered::HeldBack(_) => Next::RetryAt(now),
        };
        match next {
            Next::RetryAt(due) => record.due_ms = due,
            _ => record.state = State::Dead,
        }
        let attempts = record.attempts.len();
        let last_status = record.attempts.last().and_then(|a| a.status);
        let (name, created_ms) = (record.endpoint.clone(), record.created_ms);
        let mut response = accepted(self.enqueue(message).await?);
        record_message_outcome(&name, created_ms, next);
        let headers = response.headers_mut();
        headers.insert(
            "Hookgate-Sync-Fallback",
            http::HeaderValue::from_static("queue"),
        );
        headers.insert("Hookgate-Attempts", attempts.into());
        if let Some(status) = last_status {
            headers.insert("Hookgate-Last-Status", status.into());
        }
        Ok(response)
    }
}

/// The receiver's own answer, passed back to the app with the delivery id.
fn relay(message: &Message, outcome: &Outcome) -> Response<Vec<u8>> {
    let status = outcome.attempt.status.unwrap_or(502);
    let mut response = Response::builder()
        .status(status)
        .header("Content-Length", outcome.reply.body.len())
        .header("Hookgate-Delivery-Id", message.record.id.as_str())
        .header("Hookgate-Attempts", message.record.attempts.len());
    if let Some(content_type) = &outcome.reply.content_type {
        response = response.header("Content-Type", content_type.as_str());
    }
    response
        .body(outcome.reply.body.clone())
        .unwrap_or_else(|e| {
            ErrorResponse::new(502, "bad_receiver_answer", e.to_string()).to_response()
        })
}
