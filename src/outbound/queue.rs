//! The durable outbound queue. A message is written (and fsync'd) before the app gets its
//! 202, and removed only after a successful or final attempt, so a crash loses nothing:
//! what was in flight is attempted again once its lease lapses (at-least-once, with the
//! same delivery id so receivers can dedupe).
//!
//! The embedded backend is redb (pure Rust, ACID, crash-safe copy-on-write B-tree; the
//! fastest fsync-per-commit of the embedded stores compared in `shared/research/crates.md`).
//! Due times are an index `(due_ms, id)`, so finding due work never scans the store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::metrics::{StoreLabels, METRICS};
use crate::store::StoreHealth;

/// id → record (JSON)
const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_messages");
/// id → body bytes
const BODIES: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_bodies");
/// (due in unix ms, id) for pending messages
const DUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("outbound_due");
/// endpoint name → its state (JSON); endpoints without a row are enabled
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_endpoints");
/// "endpoint:Idempotency-Key" → (expiry in unix ms, delivery id)
const IDEMPOTENCY: TableDefinition<&str, (u64, &str)> =
    TableDefinition::new("outbound_idempotency");

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    New,
    /// The idempotency key was seen within its window: this is the earlier message's id.
    Duplicate(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its due time, or being attempted.
    Pending,
    /// Out of attempts (or refused with 410): kept for inspection and replay.
    Dead,
}

/// One delivery attempt, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The start of the receiver's answer, for diagnosis.
    pub response: String,
}

/// A per-request destination (multi-tenant senders), instead of a configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub url: String,
    pub scheme: String,
    /// `Hookgate-Secret`: kept in the queue file so retries can sign.
    pub secret: Option<String>,
    /// `Hookgate-Secret-Ref`: the name of a secret in `outbound.secrets`.
    pub secret_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub endpoint: String,
    /// Signed timestamp, fixed at accept time and reused on every attempt.
    pub timestamp: u64,
    pub content_type: Option<String>,
    pub created_ms: u64,
    pub state: State,
    pub due_ms: u64,
    /// Attempts since the message was accepted or last replayed.
    pub round_attempts: u32,
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

impl Record {
    /// The record as the admin API shows it: an inline `Hookgate-Secret` is replaced.
    pub fn redacted(mut self) -> Self {
        if let Some(secret) = self.target.as_mut().and_then(|t| t.secret.as_mut()) {
            *secret = "[redacted]".to_string();
        }
        self
    }
}

/// Whether an endpoint is being delivered to, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub enabled: bool,
    pub reason: String,
    pub since_ms: u64,
}

/// What becomes of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(u64),
    Dead,
}

#[derive(Debug)]
pub struct QueueError(pub String);

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: Into<redb::Error>> From<E> for QueueError {
    fn from(e: E) -> Self {
        QueueError(e.into().to_string())
    }
}

/// The queue operations the outbound side needs, over the embedded store (one process)
/// or Redis (shared by replicas).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Stores a new message durably, unless `idempotency` (key, expiry in unix ms) names
    /// one accepted within its window.
    async fn enqueue(
        &self,
        record: Record,
        body: Bytes,
        idempotency: Option<(String, u64)>,
    ) -> Result<Enqueued, QueueError>;
    /// Takes up to `limit` due messages and pushes each one's due time `lease_ms` ahead,
    /// so a crashed worker's messages come back on their own. The claimed record's
    /// `due_ms` is the lease's end: it identifies this claim.
    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, QueueError>;
    /// Records an attempt on a claimed message and what follows it. Ignored (false) when
    /// the claim is no longer current: its lease lapsed and another worker took it over,
    /// or an operator retried the message meanwhile.
    async fn finish_attempt(
        &self,
        claimed: &Record,
        attempt: Attempt,
        next: Next,
    ) -> Result<bool, QueueError>;
    async fn get(&self, id: &str) -> Result<Option<Record>, QueueError>;
    async fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, QueueError>;
    /// Makes a dead (or pending) message due now with a fresh round of attempts.
    async fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, QueueError>;
    /// Makes every dead message of `endpoint` (accepted since `since_ms`) due now.
    async fn replay_dead(
        &self,
        endpoint: &str,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<usize, QueueError> {
        let dead = self.list(Some(endpoint), Some(State::Dead)).await?;
        let mut replayed = 0;
        for record in dead.iter().filter(|r| r.created_ms >= since_ms) {
            replayed += usize::from(self.retry_now(&record.id, now_ms).await?);
        }
        Ok(replayed)
    }
    /// Deletes the messages in `state` (of one endpoint, or all).
    async fn purge(&self, endpoint: Option<&str>, state: State) -> Result<usize, QueueError>;
    /// Moves a claimed message's due time without counting an attempt (held back).
    async fn postpone(&self, id: &str, due_ms: u64) -> Result<(), QueueError>;
    async fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, QueueError>;
    async fn set_endpoint_state(
        &self,
        endpoint: &str,
        state: &EndpointState,
    ) -> Result<(), QueueError>;
}

/// The embedded queue: redb in `store.path/outbound.redb`, used from async code through
/// the blocking pool (every write is an fsync'd commit).
#[derive(Clone)]
pub struct EmbeddedQueue(Arc<Redb>);

impl EmbeddedQueue {
    pub fn open(dir: &Path, health: Arc<StoreHealth>) -> Result<Self, String> {
        Redb::open(dir, health).map(|redb| EmbeddedQueue(Arc::new(redb)))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Redb) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let redb = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let result = op(&redb);
            if result.is_err() {
                redb.recover();
            }
            result
        })
        .await
        .map_err(|e| QueueError(format!("queue task failed: {e}")))?
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(
        &self,
        record: Record,
        body: Bytes,
        idempotency: Option<(String, u64)>,
    ) -> Result<Enqueued, QueueError> {
        self.blocking(move |q| {
            q.enqueue(
                record,
                &body,
                idempotency.as_ref().map(|(k, e)| (k.as_str(), *e)),
            )
        })
        .await
    }
    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, QueueError> {
        self.blocking(move |q| q.claim_due(now_ms, lease_ms, limit))
            .await
    }
    async fn finish_attempt(
        &self,
        claimed: &Record,
        attempt: Attempt,
        next: Next,
    ) -> Result<bool, QueueError> {
        let (id, lease_end) = (claimed.id.clone(), claimed.due_ms);
        self.blocking(move |q| q.finish_attempt(&id, lease_end, attempt, next))
            .await
    }
    async fn get(&self, id: &str) -> Result<Option<Record>, QueueError> {
        let id = id.to_string();
        self.blocking(move |q| q.get(&id)).await
    }
    async fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, QueueError> {
        let endpoint = endpoint.map(str::to_string);
        self.blocking(move |q| q.list(endpoint.as_deref(), state))
            .await
    }
    async fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, QueueError> {
        let id = id.to_string();
        self.blocking(move |q| q.retry_now(&id, now_ms)).await
    }
    async fn purge(&self, endpoint: Option<&str>, state: State) -> Result<usize, QueueError> {
        let endpoint = endpoint.map(str::to_string);
        self.blocking(move |q| q.purge(endpoint.as_deref(), state))
            .await
    }
    async fn postpone(&self, id: &str, due_ms: u64) -> Result<(), QueueError> {
        let id = id.to_string();
        self.blocking(move |q| q.postpone(&id, due_ms)).await
    }
    async fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, QueueError> {
        self.blocking(|q| q.endpoint_states()).await
    }
    async fn set_endpoint_state(
        &self,
        endpoint: &str,
        state: &EndpointState,
    ) -> Result<(), QueueError> {
        let (endpoint, state) = (endpoint.to_string(), state.clone());
        self.blocking(move |q| q.set_endpoint_state(&endpoint, &state))
            .await
    }
}

/// After a write error (a full disk, an I/O error) redb refuses every write until the
/// file is reopened; [`Redb::recover`] does that, at most this often.
const REOPEN_EVERY: Duration = Duration::from_millis(250);

struct Redb {
    path: PathBuf,
    /// `None` between a broken handle's drop and a successful reopen.
    db: RwLock<Option<Arc<Database>>>,
    health: Arc<StoreHealth>,
    last_recovery: Mutex<Option<Instant>>,
}

impl Redb {
    fn open(dir: &Path, health: Arc<StoreHealth>) -> Result<Self, String> {
        let path = dir.join("outbound.redb");
        let db =
            Self::open_file(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(Redb {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            health,
            last_recovery: Mutex::new(None),
        })
    }

    fn open_file(path: &Path) -> Result<Database, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            // Create the tables once so readers never meet a missing one.
            txn.open_table(MESSAGES)?;
            txn.open_table(BODIES)?;
            txn.open_table(DUE)?;
            txn.open_table(IDEMPOTENCY)?;
            txn.open_table(ENDPOINTS)?;
        }
        txn.commit()?;
        Ok(db)
    }

    fn db(&self) -> Result<Arc<Database>, QueueError> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                QueueError("the queue file is being reopened after a write error".into())
            })
    }

    /// After a failed operation: if the file no longer takes writes, reopen it.
    fn recover(&self) {
        {
            let mut last = self.last_recovery.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < REOPEN_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let writable = self.db().ok().map(|db| {
            db.begin_write()
                .map_err(redb::Error::from)
                .and_then(|t| Ok(t.commit()?))
        });
        match writable {
            Some(Ok(())) => return,
            Some(Err(e)) => self.health.failed("queue", &e),
            None => {}
        }
        METRICS
            .store_errors
            .get_or_create(&StoreLabels { op: "queue_reopen" })
            .inc();
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        // redb locks its file: the old handle must be gone before the new one opens. An
        // operation still holding it keeps it alive; the next recovery tries again.
        if let Some(old) = slot.take() {
            if let Err(still_used) = Arc::try_unwrap(old) {
                *slot = Some(still_used);
                return;
            }
        }
        match Self::open_file(&self.path) {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                self.health.recovered("queue");
            }
            Err(e) => self.health.failed("queue", &e),
        }
    }
}

fn encode(record: &Record) -> Vec<u8> {
    serde_json::to_vec(record).expect("a record always serializes")
}

fn decode(bytes: &[u8]) -> Result<Record, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError(format!("corrupt record: {e}")))
}

/// The synchronous redb operations behind [`EmbeddedQueue`].
impl Redb {
    fn enqueue(
        &self,
        record: Record,
        body: &[u8],
        idempotency: Option<(&str, u64)>,
    ) -> Result<Enqueued, QueueError> {
        let txn = self.db()?.begin_write()?;
        {
            if let Some((key, expires_ms)) = idempotency {
                let mut keys = txn.open_table(IDEMPOTENCY)?;
                let earlier = keys
                    .get(key)?
                    .filter(|v| v.value().0 > record.created_ms)
                    .map(|v| v.value().1.to_string());
                if let Some(id) = earlier {
                    return Ok(Enqueued::Duplicate(id));
                }
                keys.insert(key, (expires_ms, record.id.as_str()))?;
            }
            txn.open_table(MESSAGES)?
                .insert(record.id.as_str(), encode(&record).as_slice())?;
            txn.open_table(BODIES)?.insert(record.id.as_str(), body)?;
            txn.open_table(DUE)?
                .insert((record.due_ms, record.id.as_str()), ())?;
        }
        txn.commit()?;
        Ok(Enqueued::New)
    }

    fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, QueueError> {
        let txn = self.db()?.begin_write()?;
        let mut claimed = Vec::new();
        {
            let mut due = txn.open_table(DUE)?;
            let mut messages = txn.open_table(MESSAGES)?;
            let bodies = txn.open_table(BODIES)?;
            let ready: Vec<(u64, String)> = due
                .range((0, "")..=(now_ms, "\u{10ffff}"))?
                .take(limit)
                .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_string())))
                .collect::<Result<_, _>>()?;
            for (due_ms, id) in ready {
                due.remove((due_ms, id.as_str()))?;
                let Some(bytes) = messages.get(id.as_str())?.map(|v| v.value().to_vec()) else {
                    continue;
                };
                let mut record = decode(&bytes)?;
                record.due_ms = now_ms + lease_ms;
                messages.insert(id.as_str(), encode(&record).as_slice())?;
                due.insert((record.due_ms, id.as_str()), ())?;
                let body = bodies
                    .get(id.as_str())?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                claimed.push((record, body));
            }
        }
        txn.commit()?;
        Ok(claimed)
    }

    fn finish_attempt(
        &self,
        id: &str,
        lease_end: u64,
        attempt: Attempt,
        next: Next,
    ) -> Result<bool, QueueError> {
        let txn = self.db()?.begin_write()?;
        {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut due = txn.open_table(DUE)?;
            let Some(bytes) = messages.get(id)?.map(|v| v.value().to_vec()) else {
                return Ok(false);
            };
            let mut record = decode(&bytes)?;
            if record.state != State::Pending || record.due_ms != lease_end {
                return Ok(false); // not this claim's any more
            }
            due.remove((record.due_ms, id))?;
            match next {
                Next::Delivered => {
                    messages.remove(id)?;
                    txn.open_table(BODIES)?.remove(id)?;
                }
                Next::RetryAt(due_ms) => {
                    record.attempts.push(attempt);
                    record.round_attempts += 1;
                    record.due_ms = due_ms;
                    due.insert((due_ms, id), ())?;
                    messages.insert(id, encode(&record).as_slice())?;
                }
                Next::Dead => {
                    record.attempts.push(attempt);
                    record.round_attempts += 1;
                    record.state = State::Dead;
                    messages.insert(id, encode(&record).as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(true)
    }

    fn get(&self, id: &str) -> Result<Option<Record>, QueueError> {
        let txn = self.db()?.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        let bytes = messages.get(id)?.map(|v| v.value().to_vec());
        bytes.map(|b| decode(&b)).transpose()
    }

    fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, QueueError> {
        let txn = self.db()?.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        let mut records = Vec::new();
        for row in messages.iter()? {
            let record = decode(row?.1.value())?;
            if endpoint.is_none_or(|e| e == record.endpoint)
                && state.is_none_or(|s| s == record.state)
            {
                records.push(record);
            }
        }
        records.sort_by_key(|r| r.created_ms);
        Ok(records)
    }

    fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, QueueError> {
        let txn = self.db()?.begin_write()?;
        let found = {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut due = txn.open_table(DUE)?;
            let bytes = messages.get(id)?.map(|v| v.value().to_vec());
            match bytes {
                None => false,
                Some(bytes) => {
                    let mut record = decode(&bytes)?;
                    if record.state == State::Pending {
                        due.remove((record.due_ms, id))?;
                    }
                    record.state = State::Pending;
                    record.round_attempts = 0;
                    record.due_ms = now_ms;
                    due.insert((now_ms, id), ())?;
                    messages.insert(id, encode(&record).as_slice())?;
                    true
                }
            }
        };
        txn.commit()?;
        Ok(found)
    }

    fn purge(&self, endpoint: Option<&str>, state: State) -> Result<usize, QueueError> {
        let doomed = self.list(endpoint, Some(state))?;
        let txn = self.db()?.begin_write()?;
        {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut bodies = txn.open_table(BODIES)?;
            let mut due = txn.open_table(DUE)?;
            for record in &doomed {
                messages.remove(record.id.as_str())?;
                bodies.remove(record.id.as_str())?;
                if record.state == State::Pending {
                    due.remove((record.due_ms, record.id.as_str()))?;
                }
            }
        }
        txn.commit()?;
        Ok(doomed.len())
    }

    fn postpone(&self, id: &str, due_ms: u64) -> Result<(), QueueError> {
        let txn = self.db()?.begin_write()?;
        {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut due = txn.open_table(DUE)?;
            let bytes = messages.get(id)?.map(|v| v.value().to_vec());
            if let Some(bytes) = bytes {
                let mut record = decode(&bytes)?;
                due.remove((record.due_ms, id))?;
                record.due_ms = due_ms;
                due.insert((due_ms, id), ())?;
                messages.insert(id, encode(&record).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, QueueError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENDPOINTS)?;
        let mut states = Vec::new();
        for row in table.iter()? {
            let (name, bytes) = row?;
            let state = serde_json::from_slice(bytes.value())
                .map_err(|e| QueueError(format!("corrupt endpoint state: {e}")))?;
            states.push((name.value().to_string(), state));
        }
        Ok(states)
    }

    fn set_endpoint_state(&self, endpoint: &str, state: &EndpointState) -> Result<(), QueueError> {
        let txn = self.db()?.begin_write()?;
        {
            let bytes = serde_json::to_vec(state).expect("a state always serializes");
            txn.open_table(ENDPOINTS)?
                .insert(endpoint, bytes.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }
}
