//! The embedded dedupe store: ids in memory (bounded), delivered ids also appended to a
//! log in `store.path` ([`DedupeLog`]) so a restart keeps the window.
//!
//! Writes go to one background thread that appends whatever has queued up in one write
//! (every 2 ms under load) and syncs the file at most every
//! [`SYNC_EVERY`](super::dedupe_log::SYNC_EVERY), so requests never wait for a disk. A
//! killed process loses at most the ids of the last 2 ms, a power cut those of the last
//! sync; the sender's retry then reaches the app again, which the id header lets it
//! recognise.
//!
//! A failed write (a full disk, an I/O error) keeps its ids: the writer tries them again
//! in a new segment every second until it can, and the store reports itself broken to
//! `/readyz` meanwhile. Claims go on from memory, so deliveries are still deduped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::dedupe_log::DedupeLog;
use crate::clock::now_ms;
use crate::metrics::{StoreLabels, METRICS};
use crate::store::{Claim, DedupeStore, StoreError, StoreHealth};

/// How often segments whose ids have all expired are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// After a write, the writer lets ids gather this long before it takes them: woken for
/// every id, its futex wakes and context switches cost more CPU than the writes.
const GATHER: Duration = Duration::from_millis(2);
/// How often ids whose write failed are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
enum State {
    InFlight,
    Done(u16),
}

/// An id's state and expiry in one word: the expiry (ms) above 16 bits holding a done
/// flag and the app's status. With its 16-byte id, 24 bytes in a map, not 32.
#[derive(Debug, Clone, Copy)]
struct Entry(u64);

const DONE: u64 = 0x8000;
const STATUS: u64 = 0x7fff;
/// Expiries past this (year 10889) are kept as this.
const LATEST_EXPIRY_MS: u64 = (1 << 48) - 1;

impl Entry {
    fn new(state: State, expires_ms: u64) -> Self {
        let code = match state {
            State::InFlight => 0,
            State::Done(status) => DONE | (u64::from(status) & STATUS),
        };
        Entry((expires_ms.min(LATEST_EXPIRY_MS) << 16) | code)
    }

    fn expires_ms(self) -> u64 {
        self.0 >> 16
    }

    fn state(self) -> State {
        match self.0 & DONE {
            0 => State::InFlight,
            _ => State::Done((self.0 & STATUS) as u16),
        }
    }
}

/// Ids by route (the part of a key before its first `:`).
type Entries = HashMap<String, RouteIds>;

/// Shards per route: growing a shard (a rehash, under the lock) stalls requests for a
/// sixty-fourth of what growing one map of a million ids did (tens of milliseconds).
const SHARDS: usize = 64;

/// The rest of a key, as a 128-bit keyed hash ([`IdHasher`]): where the key itself (a
/// 64-character content hash, say) took a heap string of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Id {
    /// Places the id in its shard's table.
    bucket: u64,
    /// Picks its shard; with `bucket`, tells two ids apart.
    shard: u64,
}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.bucket);
    }
}

/// A table's hasher over [`Id`]s: they are keyed hashes already, which a sender cannot
/// choose, so the table uses one as it is instead of hashing it again.
#[derive(Default)]
struct AlreadyHashed(u64);

impl std::hash::Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Id`s are hashed, through `write_u64`; anything else still spreads.
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type Shard = HashMap<Id, Entry, std::hash::BuildHasherDefault<AlreadyHashed>>;

/// One route's ids.
#[derive(Default)]
struct RouteIds {
    shards: Vec<Shard>,
    len: usize,
    /// When a full route may next be swept of expired ids (a sweep reads every id).
    next_sweep_ms: u64,
}

impl RouteIds {
    fn shard(&mut self, id: Id) -> &mut Shard {
        if self.shards.is_empty() {
            self.shards.resize_with(SHARDS, Shard::default);
        }
        &mut self.shards[(id.shard as usize) % SHARDS]
    }

    fn insert(&mut self, id: Id, entry: Entry) {
        if self.shard(id).insert(id, entry).is_none() {
            self.len += 1;
        }
    }

    fn sweep(&mut self, now: u64) {
        for shard in &mut self.shards {
            shard.retain(|_, e| e.expires_ms() > now);
        }
        self.len = self.shards.iter().map(Shard::len).sum();
    }
}

/// `route`'s ids, created on its first use (without a string allocated per request).
fn route_ids<'a>(entries: &'a mut Entries, route: &str) -> &'a mut RouteIds {
    if !entries.contains_key(route) {
        entries.insert(route.to_string(), RouteIds::default());
    }
    entries.get_mut(route).expect("inserted above")
}

/// Hashes the rest of a key with keys drawn at start: ids are chosen by senders, who must
/// not be able to make two collide. (The log keeps whole keys; a restart hashes anew.)
struct IdHasher([std::hash::RandomState; 2]);

impl IdHasher {
    fn new() -> Self {
        IdHasher([std::hash::RandomState::new(), std::hash::RandomState::new()])
    }

    fn hash(&self, rest: &str) -> Id {
        use std::hash::BuildHasher;
        Id {
            bucket: self.0[0].hash_one(rest),
            shard: self.0[1].hash_one(rest),
        }
    }
}

/// A key's route and the rest of it.
fn split(key: &str) -> (&str, &str) {
    key.split_once(':').unwrap_or(("", key))
}

pub struct EmbeddedDedupe {
    entries: Mutex<Entries>,
    hasher: IdHasher,
    /// Ids one route may hold: an equal share of `store.max_ids`, so that a flood of ids
    /// on one route (a replayed body under fresh ids) fills only that route's share.
    route_capacity: usize,
    writes: Mutex<Option<mpsc::Sender<(String, u64, u16)>>>,
    /// The writer, joined on drop so that the ids it still holds reach the file.
    writer: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedDedupe {
    /// Opens (or creates) the log in `dir` and loads the ids still inside their window.
    /// `capacity` ids in all are shared equally by `routes` routes.
    pub fn open(
        dir: &Path,
        capacity: usize,
        routes: usize,
        health: Arc<StoreHealth>,
    ) -> Result<Self, String> {
        let route_capacity = (capacity / routes.max(1)).max(1);
        let mut entries = Entries::new();
        let hasher = IdHasher::new();
        let now = now_ms();
        let log = DedupeLog::open(dir, now, |(key, expires_ms, status)| {
            let (route, rest) = split(key);
            let ids = entries.entry(route.to_string()).or_default();
            let id = hasher.hash(rest);
            if expires_ms > now && (ids.len < route_capacity || ids.shard(id).contains_key(&id)) {
                let state = State::Done(status);
                ids.insert(id, Entry::new(state, expires_ms));
            }
        })?;
        let ids: usize = entries.values().map(|r| r.len).sum();
        tracing::info!(ids, path = %dir.display(), "dedupe window loaded");
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("hookgate-dedupe-writer".into())
            .spawn(move || write_loop(log, rx, &health))
            .map_err(|e| format!("cannot start the dedupe writer: {e}"))?;
        Ok(EmbeddedDedupe {
            entries: Mutex::new(entries),
            hasher,
            route_capacity,
            writes: Mutex::new(Some(tx)),
            writer: Some(writer),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave an entry half-written: recover.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for EmbeddedDedupe {
    fn drop(&mut self) {
        // Without a sender the writer writes and syncs what it holds, then ends.
        self.writes.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Appends queued ids in batches, and deletes expired segments now and then. Ids whose
/// write failed stay queued for the next try.
fn write_loop(mut log: DedupeLog, rx: mpsc::Receiver<(String, u64, u16)>, health: &StoreHealth) {
    let mut unwritten: HashMap<String, (u64, u16)> = HashMap::new();
    let mut last_sweep = std::time::Instant::now();
    loop {
        let wait = if unwritten.is_empty() {
            log.sync_due_in().unwrap_or(SWEEP_EVERY)
        } else {
            RETRY_EVERY
        };
        match rx.recv_timeout(wait) {
            Ok((key, expires_ms, status)) => {
                unwritten.insert(key, (expires_ms, status));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Err(e) = log.sync() {
                    tracing::error!(error = %e, "the last dedupe ids could not be synced");
                }
                return;
            }
        }
        for (key, expires_ms, status) in rx.try_iter() {
            unwritten.insert(key, (expires_ms, status));
        }
        let now = now_ms();
        unwritten.retain(|_, (expires_ms, _)| *expires_ms > now);
        if last_sweep.elapsed() >= SWEEP_EVERY {
            log.drop_expired(now);
            last_sweep = std::time::Instant::now();
        }
        let written = if unwritten.is_empty() {
            // Nothing new: sync what is written once it is due.
            match log.sync_due_in() {
                Some(due) if due.is_zero() => log.sync(),
                _ => continue,
            }
        } else {
            let records = unwritten.iter().map(|(k, (e, s))| (k.as_str(), *e, *s));
            log.append(records)
        };
        match written {
            Ok(()) => {
                let wrote = !unwritten.is_empty();
                unwritten.clear();
                health.recovered("dedupe");
                if wrote {
                    std::thread::sleep(GATHER);
                }
            }
            Err(e) => {
                health.failed("dedupe", &e);
                METRICS.store_errors.get_or_create(&PERSIST).inc();
            }
        }
    }
}

/// The `op` label of failed commits of delivered ids.
const PERSIST: StoreLabels = StoreLabels {
    op: "dedupe_persist",
};

impl EmbeddedDedupe {
    fn claim_locked(
        &self,
        entries: &mut Entries,
        key: &str,
        now: u64,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let (route, rest) = split(key);
        let id = self.hasher.hash(rest);
        let ids = route_ids(entries, route);
        let known = ids.shard(id).get(&id).copied();
        if let Some(entry) = known.filter(|e| e.expires_ms() > now) {
            return Ok(match entry.state() {
                State::InFlight => Claim::InFlight,
                State::Done(status) => Claim::Done { status },
            });
        }
        if ids.len >= self.route_capacity && known.is_none() {
            // Swept at most once a second: under a flood of new ids, a sweep per claim
            // would read every id each time.
            if now >= ids.next_sweep_ms {
                ids.sweep(now);
                ids.next_sweep_ms = now + 1000;
            }
            if ids.len >= self.route_capacity {
                return Err(StoreError::Full {
                    capacity: self.route_capacity,
                });
            }
        }
        let expires_ms = now + lease.as_millis() as u64;
        let state = State::InFlight;
        ids.insert(id, Entry::new(state, expires_ms));
        Ok(Claim::Claimed)
    }

    fn release_locked(&self, entries: &mut Entries, key: &str) {
        let (route, rest) = split(key);
        let id = self.hasher.hash(rest);
        if let Some(ids) = entries.get_mut(route) {
            let shard = ids.shard(id);
            if matches!(shard.get(&id), Some(e) if matches!(e.state(), State::InFlight)) {
                shard.remove(&id);
                ids.len -= 1;
            }
        }
    }

    /// Records `keys` as delivered in memory, and queues them for the log.
    fn complete_keys(&self, keys: &[impl AsRef<str>], status: u16, ttl: Duration) {
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        let state = State::Done(status);
        {
            let mut entries = self.lock();
            for key in keys {
                let (route, rest) = split(key.as_ref());
                let id = self.hasher.hash(rest);
                route_ids(&mut entries, route).insert(id, Entry::new(state, expires_ms));
            }
        }
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            let sent = writes
                .as_ref()
                .map(|w| w.send((key.as_ref().to_string(), expires_ms, status)));
            if !matches!(sent, Some(Ok(()))) {
                tracing::error!(
                    "the dedupe writer has stopped; delivered ids are kept in memory only"
                );
            }
        }
    }
}

#[async_trait]
impl DedupeStore for EmbeddedDedupe {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        self.claim_locked(&mut self.lock(), key, now_ms(), lease)
    }

    async fn complete(&self, key: &str, status: u16, ttl: Duration) -> Result<(), StoreError> {
        self.complete_keys(&[key], status, ttl);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.release_locked(&mut self.lock(), key);
        Ok(())
    }

    /// Under one lock: no other request sees some of the keys claimed and not the rest.
    async fn claim_all(&self, keys: &[String], lease: Duration) -> Result<Claim, StoreError> {
        let now = now_ms();
        let mut entries = self.lock();
        for (claimed, key) in keys.iter().enumerate() {
            let found = self.claim_locked(&mut entries, key, now, lease);
            if !matches!(found, Ok(Claim::Claimed)) {
                for key in &keys[..claimed] {
                    self.release_locked(&mut entries, key);
                }
                return found;
            }
        }
        Ok(Claim::Claimed)
    }

    async fn complete_all(
        &self,
        keys: &[String],
        status: u16,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.complete_keys(keys, status, ttl);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);
    const TTL: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn expired_entries_are_claimable_and_make_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedDedupe::open(dir.path(), 2, 1, Arc::default()).unwrap();
        assert_eq!(store.claim("a", Duration::ZERO).await, Ok(Claim::Claimed));
        assert_eq!(
            store.claim("a", LEASE).await,
            Ok(Claim::Claimed),
            "a lapsed lease frees the id"
        );
        assert_eq!(store.claim("b", LEASE).await, Ok(Claim::Claimed));
        assert_eq!(
            store.claim("c", LEASE).await,
            Err(StoreError::Full { capacity: 2 })
        );
        store.complete("b", 200, Duration::ZERO).await.unwrap();
        assert_eq!(
            store.claim("c", LEASE).await,
            Err(StoreError::Full { capacity: 2 }),
            "a full route is swept at most once a second"
        );
        crate::clock::advance(Duration::from_secs(1));
        assert_eq!(
            store.claim("c", LEASE).await,
            Ok(Claim::Claimed),
            "expired ids are swept when full"
        );
    }

    #[tokio::test]
    async fn delivered_ids_are_kept_for_their_ttl_and_claimable_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedDedupe::open(dir.path(), 10, 1, Arc::default()).unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(store.claim("a", LEASE).await, Ok(Claim::Claimed));
        store.complete("a", 201, hour).await.unwrap();
        crate::clock::advance(hour - Duration::from_secs(1));
        assert_eq!(
            store.claim("a", LEASE).await,
            Ok(Claim::Done { status: 201 })
        );
        crate::clock::advance(Duration::from_secs(2));
        assert_eq!(store.claim("a", LEASE).await, Ok(Claim::Claimed));
        // An in-flight claim lapses after its lease, not before.
        crate::clock::advance(LEASE - Duration::from_secs(1));
        assert_eq!(store.claim("a", LEASE).await, Ok(Claim::InFlight));
        crate::clock::advance(Duration::from_secs(2));
        assert_eq!(store.claim("a", LEASE).await, Ok(Claim::Claimed));
    }

    #[tokio::test]
    async fn a_full_route_leaves_the_other_routes_their_share() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedDedupe::open(dir.path(), 4, 2, Arc::default()).unwrap();
        for id in ["flood:1", "flood:2"] {
            assert_eq!(store.claim(id, LEASE).await, Ok(Claim::Claimed));
        }
        assert_eq!(
            store.claim("flood:3", LEASE).await,
            Err(StoreError::Full { capacity: 2 })
        );
        for id in ["quiet:1", "quiet:2"] {
            assert_eq!(store.claim(id, LEASE).await, Ok(Claim::Claimed), "{id}");
        }
    }

    #[test]
    fn an_entry_keeps_its_state_and_expiry_in_one_word() {
        let now = 1_790_000_000_000;
        for (state, status) in [(State::InFlight, None), (State::Done(200), Some(200))] {
            let entry = Entry::new(state, now);
            assert_eq!(entry.expires_ms(), now);
            let kept = match entry.state() {
                State::InFlight => None,
                State::Done(status) => Some(status),
            };
            assert_eq!(kept, status);
        }
        assert!(matches!(
            Entry::new(State::Done(0), 1).state(),
            State::Done(0)
        ));
        assert_eq!(
            Entry::new(State::Done(299), u64::MAX).expires_ms(),
            LATEST_EXPIRY_MS,
            "a window too long to hold ends in the year 10889"
        );
        assert_eq!(std::mem::size_of::<(Id, Entry)>(), 24);
    }

    #[tokio::test]
    async fn a_request_claims_all_its_keys_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedDedupe::open(dir.path(), 100, 1, Arc::default()).unwrap();
        let keys = |a: &str, b: &str| [a.to_string(), b.to_string()];
        assert_eq!(
            store.claim_all(&keys("r:1", "r:content:x"), LEASE).await,
            Ok(Claim::Claimed)
        );
        store
            .complete_all(&keys("r:1", "r:content:x"), 202, TTL)
            .await
            .unwrap();
        // A fresh id with a replayed body: the content is done, and the id is left free.
        assert_eq!(
            store.claim_all(&keys("r:2", "r:content:x"), LEASE).await,
            Ok(Claim::Done { status: 202 })
        );
        assert_eq!(store.claim("r:2", LEASE).await, Ok(Claim::Claimed));
        // The id in flight: the new content is not left claimed either.
        assert_eq!(
            store.claim_all(&keys("r:2", "r:content:y"), LEASE).await,
            Ok(Claim::InFlight)
        );
        assert_eq!(store.claim("r:content:y", LEASE).await, Ok(Claim::Claimed));
    }

    #[tokio::test]
    async fn delivered_ids_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedDedupe::open(dir.path(), 100, 1, Arc::default()).unwrap();
            store.claim("r:kept", LEASE).await.unwrap();
            store.complete("r:kept", 200, TTL).await.unwrap();
            store.claim("r:in-flight", LEASE).await.unwrap();
            store.claim("r:expired", LEASE).await.unwrap();
            store
                .complete("r:expired", 200, Duration::ZERO)
                .await
                .unwrap();
        }
        let store = EmbeddedDedupe::open(dir.path(), 100, 1, Arc::default()).unwrap();
        assert_eq!(
            store.claim("r:kept", LEASE).await,
            Ok(Claim::Done { status: 200 })
        );
        assert_eq!(store.claim("r:in-flight", LEASE).await, Ok(Claim::Claimed));
        assert_eq!(store.claim("r:expired", LEASE).await, Ok(Claim::Claimed));
    }
}
