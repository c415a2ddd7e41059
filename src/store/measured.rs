//! What every backend gets, written once around it: each operation is timed in
//! `hookgate_store_operation_duration_seconds{op}` and counted in
//! `hookgate_store_errors_total{op}` when it fails. What a failure means is the caller's
//! policy (fail open or closed, 503, retry later). How long an operation may take is the
//! backend's own setting: Redis cuts each command off at `command_timeout`; the embedded
//! files never abandon a write halfway.

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::history::{Delivered, HistoryQuery, HistoryStore, Sweep};
use super::pacing::{Limits, PacingStore, Slot, Taken};
use super::queue::{
    Attempt, DeliveryFilter, Depth, EndpointState, Enqueued, Idempotency, Next, Queue, Record,
    State,
};
use super::seal::ResealPage;
use super::subscriptions::{DeliveryNote, Subscription, SubscriptionStats, SubscriptionStore};
use super::{Claim, Decision, DedupeStore, RateKey, RateLimiter, StoreError};
use crate::metrics::{StoreLabels, METRICS};

/// One operation's metric handles, resolved once.
pub(super) struct Op {
    duration: Histogram,
    errors: Counter,
}

impl Op {
    pub(super) fn new(name: &'static str) -> Self {
        let labels = StoreLabels { op: name };
        Op {
            duration: METRICS.store_duration.get_or_create(&labels).clone(),
            errors: METRICS.store_errors.get_or_create(&labels).clone(),
        }
    }
}

/// Runs `operation` and records it as `op`.
pub(super) async fn measure<T>(
    op: &Op,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = operation.await;
    op.duration.observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        op.errors.inc();
    }
    result
}

/// A backend with the shared behaviour around it.
pub struct Measured<T> {
    inner: T,
    ops: Ops,
}

/// The operations' names, as the `op` label gives them.
struct Ops {
    dedupe_claim: Op,
    dedupe_complete: Op,
    dedupe_release: Op,
    rate_limit: Op,
    pacing_take: Op,
    pacing_give_back: Op,
    queue_enqueue: Op,
    queue_claim: Op,
    queue_finish: Op,
    queue_get: Op,
    queue_list: Op,
    queue_retry: Op,
    queue_replay: Op,
    queue_purge: Op,
    queue_postpone: Op,
    queue_depth: Op,
    queue_next_due: Op,
    queue_endpoints: Op,
    subscriptions_read: Op,
    subscriptions_write: Op,
    subscriptions_note: Op,
    history_keep: Op,
    history_read: Op,
    history_sweep: Op,
    reseal: Op,
}

impl<T> Measured<T> {
    pub fn new(inner: T) -> Self {
        Measured {
            inner,
            ops: Ops {
                dedupe_claim: Op::new("dedupe_claim"),
                dedupe_complete: Op::new("dedupe_complete"),
                dedupe_release: Op::new("dedupe_release"),
                rate_limit: Op::new("rate_limit"),
                pacing_take: Op::new("pacing_take"),
                pacing_give_back: Op::new("pacing_give_back"),
                queue_enqueue: Op::new("queue_enqueue"),
                queue_claim: Op::new("queue_claim"),
                queue_finish: Op::new("queue_finish"),
                queue_get: Op::new("queue_get"),
                queue_list: Op::new("queue_list"),
                queue_retry: Op::new("queue_retry"),
                queue_replay: Op::new("queue_replay"),
                queue_purge: Op::new("queue_purge"),
                queue_postpone: Op::new("queue_postpone"),
                queue_depth: Op::new("queue_depth"),
                queue_next_due: Op::new("queue_next_due"),
                queue_endpoints: Op::new("queue_endpoints"),
                subscriptions_read: Op::new("subscriptions_read"),
                subscriptions_write: Op::new("subscriptions_write"),
                subscriptions_note: Op::new("subscriptions_note"),
                history_keep: Op::new("history_keep"),
                history_read: Op::new("history_read"),
                history_sweep: Op::new("history_sweep"),
                reseal: Op::new("reseal"),
            },
        }
    }
}

#[async_trait]
impl<T: DedupeStore> DedupeStore for Measured<T> {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let op = &self.ops.dedupe_claim;
        measure(op, self.inner.claim(key, lease)).await
    }
    async fn complete(&self, key: &str, status: u16, ttl: Duration) -> Result<(), StoreError> {
        let op = &self.ops.dedupe_complete;
        measure(op, self.inner.complete(key, status, ttl)).await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let op = &self.ops.dedupe_release;
        measure(op, self.inner.release(key)).await
    }
    async fn claim_all(&self, keys: &[String], lease: Duration) -> Result<Claim, StoreError> {
        let op = &self.ops.dedupe_claim;
        measure(op, self.inner.claim_all(keys, lease)).await
    }
    async fn complete_all(
        &self,
        keys: &[String],
        status: u16,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let op = &self.ops.dedupe_complete;
        measure(op, self.inner.complete_all(keys, status, ttl)).await
    }
}

#[async_trait]
impl<T: RateLimiter> RateLimiter for Measured<T> {
    async fn check(&self, key: &RateKey) -> Result<Decision, StoreError> {
        measure(&self.ops.rate_limit, self.inner.check(key)).await
    }
}

#[async_trait]
impl<T: PacingStore> PacingStore for Measured<T> {
    async fn take(
        &self,
        receiver: &str,
        limits: &Limits,
        wanted: u32,
    ) -> Result<Taken, StoreError> {
        let op = &self.ops.pacing_take;
        measure(op, self.inner.take(receiver, limits, wanted)).await
    }
    async fn give_back(&self, receiver: &str, slot: Slot) -> Result<(), StoreError> {
        let op = &self.ops.pacing_give_back;
        measure(op, self.inner.give_back(receiver, slot)).await
    }
}

#[async_trait]
impl<T: Queue> Queue for Measured<T> {
    async fn enqueue_many(
        &self,
        records: Vec<Record>,
        body: Bytes,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError> {
        let op = &self.ops.queue_enqueue;
        measure(op, self.inner.enqueue_many(records, body, idempotency)).await
    }
    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, StoreError> {
        let op = &self.ops.queue_claim;
        measure(op, self.inner.claim_due(now_ms, lease_ms, limit)).await
    }
    async fn finish_attempt(
        &self,
        claimed: &Record,
        attempt: Attempt,
        next: Next,
    ) -> Result<bool, StoreError> {
        let op = &self.ops.queue_finish;
        measure(op, self.inner.finish_attempt(claimed, attempt, next)).await
    }
    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        measure(&self.ops.queue_get, self.inner.get(id)).await
    }
    async fn body(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        measure(&self.ops.queue_get, self.inner.body(id)).await
    }
    async fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, StoreError> {
        let op = &self.ops.queue_list;
        measure(op, self.inner.list(endpoint, state)).await
    }
    async fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let op = &self.ops.queue_retry;
        measure(op, self.inner.retry_now(id, now_ms)).await
    }
    async fn replay_dead(&self, filter: &DeliveryFilter, now_ms: u64) -> Result<usize, StoreError> {
        let op = &self.ops.queue_replay;
        measure(op, self.inner.replay_dead(filter, now_ms)).await
    }
    async fn purge(&self, filter: &DeliveryFilter, state: State) -> Result<usize, StoreError> {
        let op = &self.ops.queue_purge;
        measure(op, self.inner.purge(filter, state)).await
    }
    async fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError> {
        let op = &self.ops.queue_postpone;
        measure(op, self.inner.postpone(id, due_ms)).await
    }
    async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        measure(&self.ops.queue_next_due, self.inner.next_due()).await
    }
    async fn depth(&self) -> Result<Vec<Depth>, StoreError> {
        measure(&self.ops.queue_depth, self.inner.depth()).await
    }
    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        measure(&self.ops.reseal, self.inner.reseal_page(after, limit)).await
    }
    async fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, StoreError> {
        let op = &self.ops.queue_endpoints;
        measure(op, self.inner.endpoint_states()).await
    }
    async fn set_endpoint_state(
        &self,
        endpoint: &str,
        state: &EndpointState,
    ) -> Result<(), StoreError> {
        let op = &self.ops.queue_endpoints;
        measure(op, self.inner.set_endpoint_state(endpoint, state)).await
    }
}

#[async_trait]
impl<T: SubscriptionStore> SubscriptionStore for Measured<T> {
    async fn load(&self) -> Result<(u64, Vec<Subscription>), StoreError> {
        measure(&self.ops.subscriptions_read, self.inner.load()).await
    }
    async fn version(&self) -> Result<u64, StoreError> {
        measure(&self.ops.subscriptions_read, self.inner.version()).await
    }
    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError> {
        measure(&self.ops.subscriptions_write, self.inner.put(subscription)).await
    }
    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        measure(&self.ops.subscriptions_write, self.inner.delete(id)).await
    }
    async fn note(&self, id: &str, note: &DeliveryNote, at_ms: u64) -> Result<(), StoreError> {
        let op = &self.ops.subscriptions_note;
        measure(op, self.inner.note(id, note, at_ms)).await
    }
    async fn stats(&self, id: &str) -> Result<SubscriptionStats, StoreError> {
        measure(&self.ops.subscriptions_read, self.inner.stats(id)).await
    }
    async fn revoke_portal_tokens(&self, tenant: &str, at_ms: u64) -> Result<(), StoreError> {
        let op = &self.ops.subscriptions_write;
        measure(op, self.inner.revoke_portal_tokens(tenant, at_ms)).await
    }
    async fn portal_tokens_revoked_at(&self, tenant: &str) -> Result<Option<u64>, StoreError> {
        let op = &self.ops.subscriptions_read;
        measure(op, self.inner.portal_tokens_revoked_at(tenant)).await
    }
    async fn reseal(&self) -> Result<usize, StoreError> {
        measure(&self.ops.subscriptions_write, self.inner.reseal()).await
    }
}

#[async_trait]
impl<T: HistoryStore> HistoryStore for Measured<T> {
    async fn keep(&self, rows: Vec<(Delivered, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        measure(&self.ops.history_keep, self.inner.keep(rows)).await
    }
    async fn get(&self, id: &str) -> Result<Option<(Delivered, Option<Vec<u8>>)>, StoreError> {
        measure(&self.ops.history_read, self.inner.get(id)).await
    }
    async fn list(&self, query: &HistoryQuery) -> Result<Vec<Delivered>, StoreError> {
        measure(&self.ops.history_read, self.inner.list(query)).await
    }
    async fn sweep(&self, sweep: Sweep) -> Result<usize, StoreError> {
        measure(&self.ops.history_sweep, self.inner.sweep(sweep)).await
    }
    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        measure(&self.ops.reseal, self.inner.reseal_page(after, limit)).await
    }
}
