//! The embedded queue: redb (pure Rust, ACID, crash-safe copy-on-write B-tree, and the
//! fastest fsync-per-commit among the pure-Rust embedded stores we compared) in
//! `store.path/outbound.redb`.
//!
//! Besides the messages, redb keeps three indexes, updated in the transaction that moves a
//! message (see [`Tables`]): due times per endpoint, so finding due work never scans the
//! store and a disabled endpoint's backlog is skipped without being read; accept times per
//! endpoint, for the oldest waiting message; and per-endpoint counts by bucket, for the
//! depth gauges.
//!
//! Writes that answer a request (accepts, and the outcome of each attempt) go to one
//! committer thread, which stores whatever has queued up meanwhile in one durable commit
//! (group commit). Claims commit durably too, one commit for a whole batch of due messages.
//! Postponements commit without an fsync: a crash that loses one leaves the message due
//! at its claim's end, as before.

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
    Attempt, Bucket, DeliveryFilter, Depth, EndpointState, Enqueued, Idempotency, Next, Queue,
    Record, State,
};
use crate::store::{StoreError, StoreHealth};

/// id → record (JSON)
const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_messages");
/// id → body bytes
const BODIES: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_bodies");
/// (endpoint, due in unix ms, id) for pending messages.
const DUE: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("outbound_due_by_endpoint");
/// (due in unix ms, id): the due index of files written before it was kept per endpoint,
/// moved into [`DUE`] when such a file is opened.
const OLD_DUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("outbound_due");
/// (endpoint, accepted at in unix ms, id) for pending messages: an endpoint's first row is
/// its oldest waiting message.
const WAITING: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("outbound_waiting");
/// (endpoint, bucket) → messages in it.
const COUNTS: TableDefinition<(&str, &str), u64> = TableDefinition::new("outbound_counts");
/// endpoint name → its state (JSON); endpoints without a row are enabled
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_endpoints");
/// One key, rewritten to find out whether the file takes writes: an empty commit passes on
/// a full disk, and so do small ones while the file has free pages. [`PROBE_BYTES`] is
/// more than most messages, so a probe that passes means accepts can pass again.
const PROBE: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_probe");
const PROBE_BYTES: usize = 64 * 1024;
/// "endpoint:Idempotency-Key" → (expiry in unix ms, delivery id)
const IDEMPOTENCY: TableDefinition<&str, (u64, &str)> =
    TableDefinition::new("outbound_idempotency");
/// (expiry in unix ms, key) for every idempotency key: expired keys are swept in order.
const IDEMPOTENCY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("outbound_idempotency_expiry");
/// Expired idempotency keys removed by one enqueue, which adds at most one: the table
/// holds little more than the keys still inside their window.
const SWEEP_PER_ENQUEUE: usize = 4;
/// redb's page cache (its default is 1 GiB): memory stays flat however long the backlog;
/// due work is read from the front of the indexes, which stays cached.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Sorts after every id and endpoint name: the upper end of a range over them.
const LAST: &str = "\u{10ffff}";

/// The embedded queue: redb in `store.path/outbound.redb`, used from async code through
/// the blocking pool, with one committer thread for the writes that need an fsync.
#[derive(Clone)]
pub struct EmbeddedQueue {
    redb: Arc<Redb>,
    writes: mpsc::Sender<Write>,
}

/// Messages to store together (one body), with their idempotency key.
struct NewMessages {
    records: Vec<Record>,
    body: Bytes,
    idempotency: Option<Idempotency>,
    /// When they were accepted (unix ms): idempotency windows are measured from it.
    accepted_ms: u64,
}

/// An attempt on a claimed message (identified by its lease's end) and what follows it.
struct Outcome {
    id: String,
    lease_end: u64,
    attempt: Attempt,
    next: Next,
}

/// A write waiting for the committer, and where its answer goes: each waits for the
/// fsync of the commit that holds it.
enum Write {
    Accept(NewMessages, oneshot::Sender<Result<Enqueued, StoreError>>),
    Finish(Outcome, oneshot::Sender<Result<bool, StoreError>>),
}

/// Most writes in one commit: bounds a commit's size and its wait.
const MAX_BATCH: usize = 256;

impl EmbeddedQueue {
    pub fn open(dir: &Path, health: Arc<StoreHealth>) -> Result<Self, String> {
        let redb = Arc::new(Redb::open(dir, health)?);
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
        let messages = NewMessages {
            accepted_ms: records.first().map_or_else(now_ms, |r| r.created_ms),
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
    /// Which endpoint a claim starts with, turned by one each claim, so one endpoint's
    /// backlog cannot keep another's due messages waiting.
    claim_turn: AtomicUsize,
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
            claim_turn: AtomicUsize::new(0),
        })
    }

    fn open_file(path: &Path) -> Result<Database, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        let txn = db.begin_write()?;
        {
            // Create the tables once so readers never meet a missing one.
            txn.open_table(ENDPOINTS)?;
            let keys = txn.open_table(IDEMPOTENCY)?;
            // A file from before the expiry index: index its keys once, so they are swept.
            let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
            if expiry.is_empty()? {
                for row in keys.iter()? {
                    let (key, value) = row?;
                    expiry.insert((value.value().0, key.value()), ())?;
                }
            }
            let mut tables = Tables::open(&txn)?;
            // A file from before the per-endpoint indexes and counts: build them once.
            if tables.counts.is_empty()? && !tables.messages.is_empty()? {
                let mut records = Vec::new();
                for row in tables.messages.iter()? {
                    records.push(decode(row?.1.value())?);
                }
                for record in &records {
                    tables.index(record)?;
                }
            }
        }
        txn.delete_table(OLD_DUE)?;
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

    /// A write transaction that commits without an fsync: for postponements.
    fn begin_unsynced(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::None)?;
        Ok(txn)
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
        let writable = self.db().ok().map(|db| -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(PROBE)?
                .insert("probe", &[0u8; PROBE_BYTES][..])?;
            Ok(txn.commit()?)
        });
        match writable {
            Some(Ok(())) => {
                self.health.recovered("queue");
                return;
            }
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

/// Takes the writes that queued up while the last commit ran, and stores them in one
/// commit; each waiting request gets its own answer once that commit is on disk.
fn commit_loop(redb: &Weak<Redb>, health: &StoreHealth, queued: &mpsc::Receiver<Write>) {
    loop {
        let first = match queued.recv_timeout(REOPEN_EVERY) {
            Ok(write) => write,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle while broken: find out when the file takes writes again. (The health
                // is asked first: holding the file even briefly could make a reopen fail.)
                if health.is_broken("queue") {
                    if let Some(redb) = redb.upgrade() {
                        redb.recover();
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let Some(redb) = redb.upgrade() else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let answers = redb.commit_batch(&batch);
        match &answers {
            Err(e) => {
                redb.health.failed("queue", e);
                redb.recover();
            }
            // Recovery is the probe's to say: a small commit passing on a full disk says
            // nothing of the next accept.
            Ok(_) if redb.health.is_broken("queue") => redb.recover(),
            Ok(_) => {}
        }
        // The file is let go before anyone hears back: a caller that drops the queue on its
        // answer can open the file again at once.
        drop(redb);
        reply(batch, answers);
    }
}

/// Sends each write its answer, or the commit's error.
fn reply(batch: Vec<Write>, answers: Result<Vec<Answer>, StoreError>) {
    match answers {
        Ok(answers) => {
            for (write, answer) in batch.into_iter().zip(answers) {
                match (write, answer) {
                    (Write::Accept(_, reply), Answer::Accept(a)) => drop(reply.send(Ok(a))),
                    (Write::Finish(_, reply), Answer::Finish(a)) => drop(reply.send(a)),
                    _ => unreachable!("answers are made in the order of the writes"),
                }
            }
        }
        Err(e) => {
            for write in batch {
                match write {
                    Write::Accept(_, reply) => drop(reply.send(Err(e.clone()))),
                    Write::Finish(_, reply) => drop(reply.send(Err(e.clone()))),
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
        .range(..=(now_ms, LAST))?
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

/// The message tables of one write transaction. Every change to a message goes through
/// [`Tables::unindex`] (before) and [`Tables::store`] (after), so the due index, the
/// waiting index and the counts always agree with the messages.
struct Tables<'t> {
    messages: redb::Table<'t, &'static str, &'static [u8]>,
    bodies: redb::Table<'t, &'static str, &'static [u8]>,
    due: redb::Table<'t, (&'static str, u64, &'static str), ()>,
    waiting: redb::Table<'t, (&'static str, u64, &'static str), ()>,
    counts: redb::Table<'t, (&'static str, &'static str), u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            messages: txn.open_table(MESSAGES)?,
            bodies: txn.open_table(BODIES)?,
            due: txn.open_table(DUE)?,
            waiting: txn.open_table(WAITING)?,
            counts: txn.open_table(COUNTS)?,
        })
    }

    fn read(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let bytes = self.messages.get(id)?.map(|v| v.value().to_vec());
        bytes.map(|b| decode(&b)).transpose()
    }

    fn count(&mut self, endpoint: &str, bucket: Bucket, delta: i64) -> Result<(), StoreError> {
        let key = (endpoint, bucket.as_str());
        let current = self.counts.get(key)?.map_or(0, |v| v.value());
        self.counts
            .insert(key, current.saturating_add_signed(delta))?;
        Ok(())
    }

    /// Adds a message's index entries and count.
    fn index(&mut self, record: &Record) -> Result<(), StoreError> {
        let (endpoint, id) = (record.endpoint.as_str(), record.id.as_str());
        if record.state == State::Pending {
            self.due.insert((endpoint, record.due_ms, id), ())?;
            self.waiting.insert((endpoint, record.created_ms, id), ())?;
        }
        self.count(endpoint, record.bucket(), 1)
    }

    /// Removes a stored message's index entries and count, before it changes or leaves.
    fn unindex(&mut self, record: &Record) -> Result<(), StoreError> {
        let (endpoint, id) = (record.endpoint.as_str(), record.id.as_str());
        if record.state == State::Pending {
            self.due.remove((endpoint, record.due_ms, id))?;
            self.waiting.remove((endpoint, record.created_ms, id))?;
        }
        self.count(endpoint, record.bucket(), -1)
    }

    /// Writes a message (new, or changed after [`Tables::unindex`]) and indexes it.
    fn store(&mut self, record: &Record) -> Result<(), StoreError> {
        self.messages
            .insert(record.id.as_str(), encode(record).as_slice())?;
        self.index(record)
    }

    fn delete(&mut self, record: &Record) -> Result<(), StoreError> {
        self.unindex(record)?;
        self.messages.remove(record.id.as_str())?;
        self.bodies.remove(record.id.as_str())?;
        Ok(())
    }

    /// Moves a pending message's due time: nothing else about it changes.
    fn move_due(&mut self, record: &mut Record, due_ms: u64) -> Result<(), StoreError> {
        let (endpoint, id) = (record.endpoint.as_str(), record.id.as_str());
        self.due.remove((endpoint, record.due_ms, id))?;
        self.due.insert((endpoint, due_ms, id), ())?;
        record.due_ms = due_ms;
        self.messages.insert(id, encode(record).as_slice())?;
        Ok(())
    }
}

/// Endpoints with messages waiting (pending or scheduled), in name order.
fn endpoints_with_work(
    counts: &impl ReadableTable<(&'static str, &'static str), u64>,
) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = Vec::new();
    for row in counts.iter()? {
        let (key, count) = row?;
        let (endpoint, bucket) = key.value();
        if bucket != Bucket::Dead.as_str()
            && count.value() > 0
            && names.last().is_none_or(|n| n != endpoint)
        {
            names.push(endpoint.to_string());
        }
    }
    Ok(names)
}

/// The synchronous redb operations behind [`EmbeddedQueue`].
impl Redb {
    /// Applies a batch of writes in one durable commit, in order: each one's answer. A
    /// write that fails on its own (a corrupt record) gets its error; a failure of the
    /// transaction fails them all.
    fn commit_batch(&self, batch: &[Write]) -> Result<Vec<Answer>, StoreError> {
        let txn = self.db()?.begin_write()?;
        let mut answers = Vec::with_capacity(batch.len());
        {
            let mut keys = txn.open_table(IDEMPOTENCY)?;
            let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
            let mut tables = Tables::open(&txn)?;
            for write in batch.iter() {
                let answer = match write {
                    Write::Accept(message, _) => {
                        Answer::Accept(accept(&mut tables, &mut keys, &mut expiry, message)?)
                    }
                    Write::Finish(outcome, _) => match finish(&mut tables, outcome) {
                        Err(StoreError::Corrupt(e)) => Answer::Finish(Err(StoreError::Corrupt(e))),
                        other => Answer::Finish(Ok(other?)),
                    },
                };
                answers.push(answer);
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
        // Durable: a claim that only memory held would let a message be delivered while
        // its outcome cannot be written (a full disk), and then delivered again.
        let txn = self.db()?.begin_write()?;
        let mut claimed = Vec::new();
        {
            let disabled = disabled_endpoints(&txn.open_table(ENDPOINTS)?)?;
            let mut tables = Tables::open(&txn)?;
            let mut endpoints = endpoints_with_work(&tables.counts)?;
            endpoints.retain(|e| !disabled.contains(e));
            if !endpoints.is_empty() {
                let turn = self.claim_turn.fetch_add(1, Ordering::Relaxed) % endpoints.len();
                endpoints.rotate_left(turn);
            }
            for endpoint in &endpoints {
                let ready: Vec<String> = tables
                    .due
                    .range((endpoint.as_str(), 0, "")..=(endpoint.as_str(), now_ms, LAST))?
                    .take(limit - claimed.len())
                    .map(|row| row.map(|(k, _)| k.value().2.to_string()))
                    .collect::<Result<_, _>>()?;
                for id in ready {
                    let Some(mut record) = tables.read(&id)? else {
                        continue;
                    };
                    tables.move_due(&mut record, now_ms + lease_ms)?;
                    let body = tables
                        .bodies
                        .get(id.as_str())?
                        .map(|v| v.value().to_vec())
                        .unwrap_or_default();
                    claimed.push((record, body));
                }
                if claimed.len() == limit {
                    break;
                }
            }
        }
        txn.commit()?;
        Ok(claimed)
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
            let mut tables = Tables::open(&txn)?;
            match tables.read(id)? {
                None => false,
                Some(mut record) => {
                    tables.unindex(&record)?;
                    record.state = State::Pending;
                    record.round_attempts = 0;
                    record.due_ms = now_ms;
                    tables.store(&record)?;
                    true
                }
            }
        };
        txn.commit()?;
        Ok(found)
    }

    fn purge(&self, filter: &DeliveryFilter, state: State) -> Result<usize, StoreError> {
        let mut doomed = self.list(filter.endpoint.as_deref(), Some(state))?;
        doomed.retain(|r| filter.matches(r));
        let txn = self.db()?.begin_write()?;
        let mut purged = 0;
        {
            let mut tables = Tables::open(&txn)?;
            for record in &doomed {
                // Read again: the message may have moved since the list.
                if let Some(current) = tables.read(&record.id)?.filter(|r| r.state == state) {
                    tables.delete(&current)?;
                    purged += 1;
                }
            }
        }
        txn.commit()?;
        Ok(purged)
    }

    fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError> {
        let txn = self.begin_unsynced()?;
        {
            let mut tables = Tables::open(&txn)?;
            if let Some(mut record) = tables.read(id)?.filter(|r| r.state == State::Pending) {
                tables.move_due(&mut record, due_ms)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The earliest due time over the endpoints that are not disabled.
    fn next_due(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let disabled = disabled_endpoints(&txn.open_table(ENDPOINTS)?)?;
        let due = txn.open_table(DUE)?;
        let mut next: Option<u64> = None;
        for endpoint in endpoints_with_work(&txn.open_table(COUNTS)?)? {
            if disabled.contains(&endpoint) {
                continue;
            }
            let first = due
                .range((endpoint.as_str(), 0, "")..=(endpoint.as_str(), u64::MAX, LAST))?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().1);
            if let Some(first) = first {
                next = Some(next.map_or(first, |n| n.min(first)));
            }
        }
        Ok(next)
    }

    fn depth(&self) -> Result<Vec<Depth>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let counts = txn.open_table(COUNTS)?;
        let waiting = txn.open_table(WAITING)?;
        let mut depths: Vec<Depth> = Vec::new();
        for row in counts.iter()? {
            let (key, count) = row?;
            let (endpoint, bucket) = key.value();
            if depths.last().is_none_or(|d| d.endpoint != endpoint) {
                let oldest = waiting
                    .range((endpoint, 0, "")..=(endpoint, u64::MAX, LAST))?
                    .next()
                    .transpose()?
                    .map(|(k, _)| k.value().1);
                depths.push(Depth {
                    endpoint: endpoint.to_string(),
                    oldest_waiting_ms: oldest,
                    ..Depth::default()
                });
            }
            if let (Some(depth), Some(bucket)) = (depths.last_mut(), Bucket::parse(bucket)) {
                *depth.count_mut(bucket) = count.value();
            }
        }
        Ok(depths)
    }

    fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENDPOINTS)?;
        let mut states = Vec::new();
        for row in table.iter()? {
            let (name, bytes) = row?;
            states.push((name.value().to_string(), endpoint_state(bytes.value())?));
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

/// What a write in a batch answers.
enum Answer {
    Accept(Enqueued),
    Finish(Result<bool, StoreError>),
}

/// Stores new messages, unless their idempotency key is held by an earlier one (in this
/// batch or before, within its window): then they are a duplicate.
fn accept(
    tables: &mut Tables,
    keys: &mut redb::Table<&str, (u64, &str)>,
    expiry: &mut redb::Table<(u64, &str), ()>,
    messages: &NewMessages,
) -> Result<Enqueued, StoreError> {
    let NewMessages {
        records,
        body,
        idempotency,
        accepted_ms,
    } = messages;
    if let Some(Idempotency {
        key,
        expires_ms,
        receipt,
    }) = idempotency
    {
        sweep_expired(keys, expiry, *accepted_ms)?;
        let earlier = keys
            .get(key.as_str())?
            .filter(|v| v.value().0 > *accepted_ms)
            .map(|v| v.value().1.to_string());
        if let Some(receipt) = earlier {
            return Ok(Enqueued::Duplicate(receipt));
        }
        keys.insert(key.as_str(), (*expires_ms, receipt.as_str()))?;
        expiry.insert((*expires_ms, key.as_str()), ())?;
    }
    for record in records {
        tables.bodies.insert(record.id.as_str(), body.as_ref())?;
        tables.store(record)?;
    }
    Ok(Enqueued::New)
}

/// Records an attempt on a claimed message, if the claim is still current.
fn finish(tables: &mut Tables, outcome: &Outcome) -> Result<bool, StoreError> {
    let Some(mut record) = tables.read(&outcome.id)? else {
        return Ok(false);
    };
    if record.state != State::Pending || record.due_ms != outcome.lease_end {
        return Ok(false); // not this claim's any more
    }
    if outcome.next == Next::Delivered {
        tables.delete(&record)?;
        return Ok(true);
    }
    tables.unindex(&record)?;
    record.attempts.push(outcome.attempt.clone());
    record.round_attempts += 1;
    match outcome.next {
        Next::RetryAt(due_ms) => record.due_ms = due_ms,
        _ => record.state = State::Dead,
    }
    tables.store(&record)?;
    Ok(true)
}

fn endpoint_state(bytes: &[u8]) -> Result<EndpointState, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("endpoint state: {e}")))
}

/// Endpoints an operator (or a 410) disabled: their messages are not claimed.
fn disabled_endpoints(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut disabled = std::collections::HashSet::new();
    for row in table.iter()? {
        let (name, bytes) = row?;
        if !endpoint_state(bytes.value())?.enabled {
            disabled.insert(name.value().to_string());
        }
    }
    Ok(disabled)
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
            event: None,
            trace: None,
        }
    }

    #[test]
    fn expired_idempotency_keys_are_swept_as_messages_come() {
        let dir = tempfile::tempdir().unwrap();
        let redb = Redb::open(dir.path(), Arc::default()).unwrap();
        // Each key's window ends before the next message arrives.
        for i in 0..200u64 {
            let key = format!("acme:k{i}");
            let message = NewMessages {
                records: vec![record(&format!("m{i}"), i * 10)],
                body: Bytes::from_static(b"x"),
                idempotency: Some(Idempotency {
                    key,
                    expires_ms: i * 10 + 5,
                    receipt: format!("m{i}"),
                }),
                accepted_ms: i * 10,
            };
            let (reply_to, mut answer) = oneshot::channel();
            let batch = vec![Write::Accept(message, reply_to)];
            let answers = redb.commit_batch(&batch);
            reply(batch, answers);
            assert_eq!(answer.try_recv().unwrap().unwrap(), Enqueued::New);
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
