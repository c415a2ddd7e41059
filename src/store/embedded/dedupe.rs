//! The embedded dedupe store: ids in memory (bounded), delivered ids also written to a
//! redb file in `store.path` so a restart keeps the window.
//!
//! Writes go to one background thread that commits whatever has queued up in a single
//! durable transaction (group commit), so requests never wait for an fsync. What is lost
//! in a crash is at most the ids of the last commit in progress; the sender's retry
//! then reaches the app again, which the id header lets it recognise.
//!
//! A failed commit (a full disk, an I/O error) keeps its ids: the writer reopens the file
//! and commits them again every second until it can, and the store reports itself broken
//! to `/readyz` meanwhile. Claims go on from memory, so deliveries are still deduped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::clock::now_ms;
use crate::metrics::{StoreLabels, METRICS};
use crate::store::{Claim, DedupeStore, StoreError, StoreHealth};

/// key → (expiry in unix milliseconds, the app's status)
const DONE: TableDefinition<&str, (u64, u16)> = TableDefinition::new("dedupe_done");
/// How often the file is swept of expired ids.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often a broken file is reopened and its unwritten ids committed again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
enum State {
    InFlight,
    Done(u16),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    expires_ms: u64,
}

/// Ids by route (the part of a key before its first `:`), then by the rest of the key.
type Entries = HashMap<String, HashMap<String, Entry>>;

/// A key's route and the rest of it.
fn split(key: &str) -> (&str, &str) {
    key.split_once(':').unwrap_or(("", key))
}

pub struct EmbeddedDedupe {
    entries: Mutex<Entries>,
    /// Ids one route may hold: an equal share of `store.max_ids`, so that a flood of ids
    /// on one route (a replayed body under fresh ids) fills only that route's share.
    route_capacity: usize,
    writes: Mutex<mpsc::Sender<(String, u64, u16)>>,
}

impl EmbeddedDedupe {
    /// Opens (or creates) `dir/dedupe.redb` and loads the ids still inside their window.
    /// `capacity` ids in all are shared equally by `routes` routes.
    pub fn open(
        dir: &Path,
        capacity: usize,
        routes: usize,
        health: Arc<StoreHealth>,
    ) -> Result<Self, String> {
        let route_capacity = (capacity / routes.max(1)).max(1);
        let path = dir.join("dedupe.redb");
        let db =
            Database::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut entries = Entries::new();
        let now = now_ms();
        let mut read = || -> Result<(), redb::Error> {
            let txn = db.begin_read()?;
            let table = match txn.open_table(DONE) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            for row in table.iter()? {
                let (key, value) = row?;
                let (expires_ms, status) = value.value();
                let (route, rest) = split(key.value());
                let ids = entries.entry(route.to_string()).or_default();
                if expires_ms > now && ids.len() < route_capacity {
                    ids.insert(
                        rest.to_string(),
                        Entry {
                            state: State::Done(status),
                            expires_ms,
                        },
                    );
                }
            }
            Ok(())
        };
        read().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let ids: usize = entries.values().map(HashMap::len).sum();
        tracing::info!(ids, path = %path.display(), "dedupe window loaded");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hookgate-dedupe-writer".into())
            .spawn(move || write_loop(path, db, rx, &health))
            .map_err(|e| format!("cannot start the dedupe writer: {e}"))?;
        Ok(EmbeddedDedupe {
            entries: Mutex::new(entries),
            route_capacity,
            writes: Mutex::new(tx),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave an entry half-written: recover.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Commits queued ids in batches, and sweeps expired ones from the file now and then.
/// Ids whose commit failed stay queued, and the file is reopened before the next try.
fn write_loop(
    path: PathBuf,
    db: Database,
    rx: mpsc::Receiver<(String, u64, u16)>,
    health: &StoreHealth,
) {
    let mut db = Some(db);
    let mut unwritten: HashMap<String, (u64, u16)> = HashMap::new();
    let mut last_sweep = std::time::Instant::now();
    loop {
        let wait = if unwritten.is_empty() {
            SWEEP_EVERY
        } else {
            RETRY_EVERY
        };
        match rx.recv_timeout(wait) {
            Ok((key, expires_ms, status)) => {
                unwritten.insert(key, (expires_ms, status));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        for (key, expires_ms, status) in rx.try_iter() {
            unwritten.insert(key, (expires_ms, status));
        }
        let now = now_ms();
        unwritten.retain(|_, (expires_ms, _)| *expires_ms > now);
        if db.is_none() {
            // The old handle must be gone first: redb locks its file.
            match Database::create(&path) {
                Ok(reopened) => db = Some(reopened),
                Err(e) => {
                    health.failed("dedupe", &e);
                    METRICS.store_errors.get_or_create(&PERSIST).inc();
                    continue;
                }
            }
        }
        let Some(open) = &db else { continue };
        let sweep = last_sweep.elapsed() >= SWEEP_EVERY;
        let result = (|| -> Result<(), redb::Error> {
            let txn = open.begin_write()?;
            {
                let mut table = txn.open_table(DONE)?;
                for (key, (expires_ms, status)) in &unwritten {
                    table.insert(key.as_str(), (*expires_ms, *status))?;
                }
                if sweep {
                    table.retain(|_, (expires_ms, _)| expires_ms > now)?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                unwritten.clear();
                if sweep {
                    last_sweep = std::time::Instant::now();
                }
                health.recovered("dedupe");
            }
            Err(e) => {
                // redb refuses every write after an I/O error until it is reopened.
                db = None;
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

#[async_trait]
impl DedupeStore for EmbeddedDedupe {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = now_ms();
        let (route, rest) = split(key);
        let mut entries = self.lock();
        let ids = entries.entry(route.to_string()).or_default();
        if let Some(entry) = ids.get(rest).filter(|e| e.expires_ms > now) {
            return Ok(match entry.state {
                State::InFlight => Claim::InFlight,
                State::Done(status) => Claim::Done { status },
            });
        }
        if ids.len() >= self.route_capacity && !ids.contains_key(rest) {
            ids.retain(|_, e| e.expires_ms > now);
            if ids.len() >= self.route_capacity {
                return Err(StoreError::Full {
                    capacity: self.route_capacity,
                });
            }
        }
        let expires_ms = now + lease.as_millis() as u64;
        ids.insert(
            rest.to_string(),
            Entry {
                state: State::InFlight,
                expires_ms,
            },
        );
        Ok(Claim::Claimed)
    }

    async fn complete(&self, key: &str, status: u16, ttl: Duration) -> Result<(), StoreError> {
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        let (route, rest) = split(key);
        self.lock().entry(route.to_string()).or_default().insert(
            rest.to_string(),
            Entry {
                state: State::Done(status),
                expires_ms,
            },
        );
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if writes.send((key.to_string(), expires_ms, status)).is_err() {
            tracing::error!("the dedupe writer has stopped; delivered ids are kept in memory only");
        }
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let (route, rest) = split(key);
        let mut entries = self.lock();
        if let Some(ids) = entries.get_mut(route) {
            if matches!(
                ids.get(rest),
                Some(Entry {
                    state: State::InFlight,
                    ..
                })
            ) {
                ids.remove(rest);
            }
        }
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
        // The writer commits asynchronously; reopening waits for its file lock.
        let store = loop {
            match EmbeddedDedupe::open(dir.path(), 100, 1, Arc::default()) {
                Ok(store) => break store,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        assert_eq!(
            store.claim("r:kept", LEASE).await,
            Ok(Claim::Done { status: 200 })
        );
        assert_eq!(store.claim("r:in-flight", LEASE).await, Ok(Claim::Claimed));
        assert_eq!(store.claim("r:expired", LEASE).await, Ok(Claim::Claimed));
    }
}
