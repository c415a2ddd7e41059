//! The embedded dedupe store: ids in memory (bounded), delivered ids also written to a
//! redb file in `store.path` so a restart keeps the window.
//!
//! Writes go to one background thread that commits whatever has queued up in a single
//! durable transaction (group commit), so requests never wait for an fsync. What is lost
//! in a crash is at most the ids of the last commit in progress; the sender's retry
//! then reaches the app again, which the id header lets it recognise.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Claim, DedupeStore, StoreError};

/// key → (expiry in unix milliseconds, the app's status)
const DONE: TableDefinition<&str, (u64, u16)> = TableDefinition::new("dedupe_done");
/// How often the file is swept of expired ids.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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

pub struct EmbeddedDedupe {
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    writes: Mutex<mpsc::Sender<(String, u64, u16)>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EmbeddedDedupe {
    /// Opens (or creates) `dir/dedupe.redb` and loads the ids still inside their window.
    pub fn open(dir: &Path, capacity: usize) -> Result<Self, String> {
        let path = dir.join("dedupe.redb");
        let db =
            Database::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut entries = HashMap::new();
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
                if expires_ms > now && entries.len() < capacity {
                    entries.insert(
                        key.value().to_string(),
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
        tracing::info!(ids = entries.len(), path = %path.display(), "dedupe window loaded");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hookgate-dedupe-writer".into())
            .spawn(move || write_loop(db, rx))
            .map_err(|e| format!("cannot start the dedupe writer: {e}"))?;
        Ok(EmbeddedDedupe {
            entries: Mutex::new(entries),
            capacity,
            writes: Mutex::new(tx),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written: recover.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Commits queued ids in batches, and sweeps expired ones from the file now and then.
fn write_loop(db: Database, rx: mpsc::Receiver<(String, u64, u16)>) {
    let mut last_sweep = std::time::Instant::now();
    loop {
        let first = match rx.recv_timeout(SWEEP_EVERY) {
            Ok(item) => Some(item),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let batch: Vec<_> = first.into_iter().chain(rx.try_iter()).collect();
        let sweep = last_sweep.elapsed() >= SWEEP_EVERY;
        let result = (|| -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(DONE)?;
                for (key, expires_ms, status) in &batch {
                    table.insert(key.as_str(), (*expires_ms, *status))?;
                }
                if sweep {
                    let now = now_ms();
                    table.retain(|_, (expires_ms, _)| expires_ms > now)?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
        if sweep {
            last_sweep = std::time::Instant::now();
        }
        if let Err(e) = result {
            tracing::error!(error = %e, ids = batch.len(), "could not persist delivered ids");
        }
    }
}

#[async_trait]
impl DedupeStore for EmbeddedDedupe {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = now_ms();
        let mut entries = self.lock();
        if let Some(entry) = entries.get(key).filter(|e| e.expires_ms > now) {
            return Ok(match entry.state {
                State::InFlight => Claim::InFlight,
                State::Done(status) => Claim::Done { status },
            });
        }
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.retain(|_, e| e.expires_ms > now);
            if entries.len() >= self.capacity {
                return Err(StoreError::Full {
                    capacity: self.capacity,
                });
            }
        }
        let expires_ms = now + lease.as_millis() as u64;
        entries.insert(
            key.to_string(),
            Entry {
                state: State::InFlight,
                expires_ms,
            },
        );
        Ok(Claim::Claimed)
    }

    async fn complete(&self, key: &str, status: u16, ttl: Duration) -> Result<(), StoreError> {
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        self.lock().insert(
            key.to_string(),
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
        let mut entries = self.lock();
        if matches!(
            entries.get(key),
            Some(Entry {
                state: State::InFlight,
                ..
            })
        ) {
            entries.remove(key);
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
        let store = EmbeddedDedupe::open(dir.path(), 2).unwrap();
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
    async fn delivered_ids_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedDedupe::open(dir.path(), 100).unwrap();
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
            match EmbeddedDedupe::open(dir.path(), 100) {
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
