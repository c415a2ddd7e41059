//! The embedded queue: redb (pure Rust, ACID, crash-safe copy-on-write B-tree, and the
//! fastest fsync-per-commit among the pure-Rust embedded stores we compared) in
//! `store.path/outbound.redb`.
//!
//! Besides the messages, redb keeps three indexes, updated in the transaction that moves a
//! message (see [`tables::Tables`]): due times per endpoint, so finding due work never scans the
//! store and a disabled endpoint's backlog is skipped without being read; accept times per
//! endpoint, for the oldest waiting message; and per-endpoint counts by bucket, for the
//! depth gauges.
//!
//! Writes that answer a request (accepts, and the outcome of each attempt) go to one
//! committer thread, which stores whatever has queued up meanwhile in one durable commit
//! (group commit). Claims commit durably too, one commit for a whole batch of due messages.
//! Postponements commit without an fsync: a crash that loses one leaves the message due
//! at its claim's end, as before.
//!
//! [`EmbeddedQueue`] (here) is the front the outbound side calls; [`tables`] holds the
//! tables and the indexes kept with them, [`committer`] the group commit, [`operations`]
//! the other transactions, and [`file`] opening the file and reopening it after a write
//! error.

mod committer;
mod file;
mod operations;
mod reseal;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::metrics::{StoreLabels, METRICS};
use crate::store::queue::{
    open_body, seal_body, Attempt, Bucket, DeliveryFilter, Depth, EndpointState, Enqueued,
    Idempotency, Next, Queue, Record, State,
};
use crate::store::seal::{ResealPage, Sealer};
use crate::store::{StoreError, StoreHealth};

use committer::{commit_loop, NewMessages, Outcome, Write};
use file::Redb;

/// The embedded queue: redb in `store.path/outbound.redb`, used from async code through
/// the blocking pool, with one committer thread for the writes that need an fsync.
#[derive(Clone)]
pub struct EmbeddedQueue {
    redb: Arc<Redb>,
    writes: mpsc::Sender<Write>,
}

impl EmbeddedQueue {
    pub fn open(dir: &Path, health: Arc<StoreHealth>, sealer: Arc<Sealer>) -> Result<Self, String> {
        let redb = Arc::new(Redb::open(dir, health, sealer)?);
        let (writes, queued) = mpsc::channel();
        // Weak: the file closes as soon as the queue is dropped, not when the thread notices.
        let committer = Arc::downgrade(&redb);
        let health = redb.health.clone();
        std::thread::Builder::new()
            .name("hookgate-queue-committer".into())
            .spawn(move || commit_loop(&committer, &health, &queued))
            .map_err(|e| format!("cannot start the queue committer: {e}"))?;
        Ok(EmbeddedQueue { redb, writes })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Redb) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let redb = self.redb.clone();
        tokio::task::spawn_blocking(move || {
            let result = op(&redb);
            if result.is_err() {
                redb.recover();
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("queue task failed: {e}")))?
    }

    /// Hands a write to the committer and waits for its answer.
    async fn commit<T>(
        &self,
        write: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the queue committer stopped".into());
        self.writes.send(write(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue_many(
        &self,
        records: Vec<Record>,
        body: Bytes,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError> {
        if records.is_empty() {
            return Ok(Enqueued::New); // nothing to store, no key to hold
        }
        let sealer = &self.redb.sealer;
        let messages = NewMessages {
            accepted_ms: records.first().map_or_else(now_ms, |r| r.created_ms),
            encoded: records.iter().map(|r| tables::encode(sealer, r)).collect(),
            sealed_bodies: sealer.enabled().then(|| {
                records
                    .iter()
                    .map(|r| seal_body(sealer, &r.id, &body))
                    .collect()
            }),
            records,
            body,
            idempotency,
        };
        self.commit(|reply| Write::Accept(messages, reply)).await
    }
    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, StoreError> {
        self.blocking(move |q| q.claim_due(now_ms, lease_ms, limit))
            .await
    }
    async fn finish_attempt(
        &self,
        claimed: &Record,
        attempt: Attempt,
        next: Next,
    ) -> Result<bool, StoreError> {
        let outcome = Outcome {
            id: claimed.id.clone(),
            lease_end: claimed.due_ms,
            attempt,
            next,
        };
        self.commit(|reply| Write::Finish(outcome, reply)).await
    }
    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let id = id.to_string();
        self.blocking(move |q| q.get(&id)).await
    }
    async fn body(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.to_string();
        self.blocking(move |q| q.body(&id)).await
    }
    async fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, StoreError> {
        let endpoint = endpoint.map(str::to_string);
        self.blocking(move |q| q.list(endpoint.as_deref(), state))
            .await
    }
    async fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.blocking(move |q| q.retry_now(&id, now_ms)).await
    }
    async fn purge(&self, filter: &DeliveryFilter, state: State) -> Result<usize, StoreError> {
        let filter = filter.clone();
        self.blocking(move |q| q.purge(&filter, state)).await
    }
    async fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.blocking(move |q| q.postpone(&id, due_ms)).await
    }
    async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        self.blocking(|q| q.next_due()).await
    }
    async fn depth(&self) -> Result<Vec<Depth>, StoreError> {
        self.blocking(|q| q.depth()).await
    }
    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        self.blocking(move |q| q.reseal_page(after.as_deref(), limit))
            .await
    }
    async fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, StoreError> {
        self.blocking(|q| q.endpoint_states()).await
    }
    async fn set_endpoint_state(
        &self,
        endpoint: &str,
        state: &EndpointState,
    ) -> Result<(), StoreError> {
        let (endpoint, state) = (endpoint.to_string(), state.clone());
        self.blocking(move |q| q.set_endpoint_state(&endpoint, &state))
            .await
    }
}
