//! The embedded queue: redb (pure Rust, ACID, crash-safe copy-on-write B-tree, and the
//! fastest fsync-per-commit among the pure-Rust embedded stores we compared) in
//! `store.path/outbound.redb`. Due times are an index `(due_ms, id)`, so finding due work
//! never scans the store.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::oneshot;

use crate::metrics::{StoreLabels, METRICS};
use crate::store::queue::{Attempt, EndpointState, Enqueued, Next, Queue, Record, State};
use crate::store::{StoreError, StoreHealth};

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
/// (expiry in unix ms, key) for every idempotency key: expired keys are swept in order.
const IDEMPOTENCY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("outbound_idempotency_expiry");
/// Expired idempotency keys removed by one enqueue, which adds at most one: the table
/// holds little more than the keys still inside their window.
const SWEEP_PER_ENQUEUE: usize = 4;

/// The embedded queue: redb in `store.path/outbound.redb`, used from async code through
/// the blocking pool (every write is an fsync'd commit). New messages go to one committer
/// thread, which stores whatever has queued up meanwhile in one commit (group commit):
/// each 202 still waits for the fsync that holds its message, and a lone message waits
/// for nothing else.
#[derive(Clone)]
pub struct EmbeddedQueue {
    redb: Arc<Redb>,
    accepts: mpsc::Sender<Accept>,
}

/// A message to store, with its idempotency key and the key's expiry (unix ms).
struct NewMessage {
    record: Record,
    body: Bytes,
    idempotency: Option<(String, u64)>,
}

/// A message waiting for the committer, and where its answer goes.
struct Accept {
    message: NewMessage,
    reply: oneshot::Sender<Result<Enqueued, StoreError>>,
}

/// Most messages in one commit: bounds a commit's size and its wait.
const MAX_BATCH: usize = 256;

impl EmbeddedQueue {
    pub fn open(dir: &Path, health: Arc<StoreHealth>) -> Result<Self, String> {
        let redb = Arc::new(Redb::open(dir, health)?);
        let (accepts, queued) = mpsc::channel();
        // Weak: the file closes as soon as the queue is dropped, not when the thread notices.
        let committer = Arc::downgrade(&redb);
        std::thread::Builder::new()
            .name("hookgate-queue-committer".into())
            .spawn(move || commit_loop(&committer, &queued))
            .map_err(|e| format!("cannot start the queue committer: {e}"))?;
        Ok(EmbeddedQueue { redb, accepts })
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
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(
        &self,
        record: Record,
        body: Bytes,
        idempotency: Option<(String, u64)>,
    ) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        let accept = Accept {
            message: NewMessage {
                record,
                body,
                idempotency,
            },
            reply,
        };
        let stopped = || StoreError::Unavailable("the queue committer stopped".into());
        self.accepts.send(accept).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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
        let (id, lease_end) = (claimed.id.clone(), claimed.due_ms);
        self.blocking(move |q| q.finish_attempt(&id, lease_end, attempt, next))
            .await
    }
    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let id = id.to_string();
        self.blocking(move |q| q.get(&id)).await
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
    async fn purge(&self, endpoint: Option<&str>, state: State) -> Result<usize, StoreError> {
        let endpoint = endpoint.map(str::to_string);
        self.blocking(move |q| q.purge(endpoint.as_deref(), state))
            .await
    }
    async fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.blocking(move |q| q.postpone(&id, due_ms)).await
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
            let keys = txn.open_table(IDEMPOTENCY)?;
            txn.open_table(ENDPOINTS)?;
            // A file from before the expiry index: index its keys once, so they are swept.
            let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
            if expiry.is_empty()? {
                for row in keys.iter()? {
                    let (key, value) = row?;
                    expiry.insert((value.value().0, key.value()), ())?;
                }
            }
        }
        txn.commit()?;
        Ok(db)
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                StoreError::Unavailable(
                    "the queue file is being reopened after a write error".into(),
                )
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

/// Takes the messages that queued up while the last commit ran, and stores them in one
/// commit; each waiting request gets its own answer once that commit is on disk.
fn commit_loop(redb: &Weak<Redb>, queued: &mpsc::Receiver<Accept>) {
    while let Ok(first) = queued.recv() {
        let Some(redb) = redb.upgrade() else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(accept) => batch.push(accept),
                Err(_) => break,
            }
        }
        let (messages, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|a| (a.message, a.reply)).unzip();
        match redb.enqueue_batch(messages) {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                redb.recover();
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Removes a few idempotency keys whose window ended by `now_ms`, oldest first. A key
/// given again after its window has a newer expiry: its older index entry goes alone.
fn sweep_expired(
    keys: &mut redb::Table<&str, (u64, &str)>,
    expiry: &mut redb::Table<(u64, &str), ()>,
    now_ms: u64,
) -> Result<(), StoreError> {
    let expired: Vec<(u64, String)> = expiry
        .range(..=(now_ms, "\u{10FFFF}"))?
        .take(SWEEP_PER_ENQUEUE)
        .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<Result<_, _>>()?;
    for (expires_ms, key) in expired {
        expiry.remove((expires_ms, key.as_str()))?;
        let current = keys.get(key.as_str())?.map(|v| v.value().0);
        if current == Some(expires_ms) {
            keys.remove(key.as_str())?;
        }
    }
    Ok(())
}

fn encode(record: &Record) -> Vec<u8> {
    serde_json::to_vec(record).expect("a record always serializes")
}

fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("record: {e}")))
}

/// The synchronous redb operations behind [`EmbeddedQueue`].
impl Redb {
    /// Stores new messages in one commit, in order: a message whose idempotency key an
    /// earlier one holds (in this batch or before, within its window) is a duplicate.
    fn enqueue_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>, StoreError> {
        let txn = self.db()?.begin_write()?;
        let mut answers = Vec::with_capacity(messages.len());
        {
            let mut keys = txn.open_table(IDEMPOTENCY)?;
            let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
            let mut stored = txn.open_table(MESSAGES)?;
            let mut bodies = txn.open_table(BODIES)?;
            let mut due = txn.open_table(DUE)?;
            for NewMessage {
                record,
                body,
                idempotency,
            } in &messages
            {
                if let Some((key, expires_ms)) = idempotency {
                    sweep_expired(&mut keys, &mut expiry, record.created_ms)?;
                    let earlier = keys
                        .get(key.as_str())?
                        .filter(|v| v.value().0 > record.created_ms)
                        .map(|v| v.value().1.to_string());
                    if let Some(id) = earlier {
                        answers.push(Enqueued::Duplicate(id));
                        continue;
                    }
                    keys.insert(key.as_str(), (*expires_ms, record.id.as_str()))?;
                    expiry.insert((*expires_ms, key.as_str()), ())?;
                }
                stored.insert(record.id.as_str(), encode(record).as_slice())?;
                bodies.insert(record.id.as_str(), body.as_ref())?;
                due.insert((record.due_ms, record.id.as_str()), ())?;
                answers.push(Enqueued::New);
            }
        }
        txn.commit()?;
        Ok(answers)
    }

    fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, StoreError> {
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
    ) -> Result<bool, StoreError> {
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

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        let bytes = messages.get(id)?.map(|v| v.value().to_vec());
        bytes.map(|b| decode(&b)).transpose()
    }

    fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, StoreError> {
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

    fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
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

    fn purge(&self, endpoint: Option<&str>, state: State) -> Result<usize, StoreError> {
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

    fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError> {
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

    fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENDPOINTS)?;
        let mut states = Vec::new();
        for row in table.iter()? {
            let (name, bytes) = row?;
            let state = serde_json::from_slice(bytes.value())
                .map_err(|e| StoreError::Corrupt(format!("endpoint state: {e}")))?;
            states.push((name.value().to_string(), state));
        }
        Ok(states)
    }

    fn set_endpoint_state(&self, endpoint: &str, state: &EndpointState) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created_ms: u64) -> Record {
        Record {
            id: id.into(),
            endpoint: "acme".into(),
            timestamp: 1_700_000_000,
            content_type: None,
            created_ms,
            state: State::Pending,
            due_ms: created_ms,
            round_attempts: 0,
            attempts: Vec::new(),
            target: None,
        }
    }

    #[test]
    fn expired_idempotency_keys_are_swept_as_messages_come() {
        let dir = tempfile::tempdir().unwrap();
        let redb = Redb::open(dir.path(), Arc::default()).unwrap();
        // Each key's window ends before the next message arrives.
        for i in 0..200u64 {
            let key = format!("acme:k{i}");
            let message = NewMessage {
                record: record(&format!("m{i}"), i * 10),
                body: Bytes::from_static(b"x"),
                idempotency: Some((key, i * 10 + 5)),
            };
            assert_eq!(redb.enqueue_batch(vec![message]).unwrap(), [Enqueued::New]);
        }
        let txn = redb.db().unwrap().begin_read().unwrap();
        let keys = txn.open_table(IDEMPOTENCY).unwrap().len().unwrap();
        let index = txn.open_table(IDEMPOTENCY_EXPIRY).unwrap().len().unwrap();
        assert!(
            keys <= 1 && index <= 1,
            "{keys} keys and {index} index entries left"
        );
    }
}
