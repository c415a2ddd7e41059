//! The embedded backend, for one process: dedupe ids in memory backed by
//! `store.path/dedupe-<n>.log`, the outbound queue in `store.path/outbound.redb`, subscriptions
//! in `store.path/subscriptions.redb`, and rate limits in memory.

mod dedupe;
mod dedupe_log;
mod history;
mod pacing;
mod queue;
mod rate_limit;
mod subscriptions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use dedupe::EmbeddedDedupe;
pub use history::EmbeddedHistory;
pub use pacing::LocalPacing;
pub use queue::EmbeddedQueue;
pub use rate_limit::LocalRateLimiter;
pub use subscriptions::EmbeddedSubscriptions;

use super::seal::{key_check, Sealer};
use super::{StoreError, StoreHealth};

/// The directory every embedded file lives in, and the health its files report to.
pub struct EmbeddedStore {
    path: PathBuf,
    max_ids: usize,
    health: Arc<StoreHealth>,
}

impl EmbeddedStore {
    pub fn open(path: &Path, max_ids: usize) -> Result<Self, String> {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("store.path: cannot create {}: {e}", path.display()))?;
        Ok(EmbeddedStore {
            path: path.to_path_buf(),
            max_ids,
            health: Arc::default(),
        })
    }

    pub fn dedupe(&self, routes: usize) -> Result<EmbeddedDedupe, String> {
        EmbeddedDedupe::open(&self.path, self.max_ids, routes, self.health.clone())
            .map_err(|e| format!("store: {e}"))
    }

    pub fn queue(&self, sealer: Arc<Sealer>) -> Result<EmbeddedQueue, String> {
        EmbeddedQueue::open(&self.path, self.health.clone(), sealer)
            .map_err(|e| format!("store: {e}"))
    }

    pub fn history(&self, sealer: Arc<Sealer>) -> Result<EmbeddedHistory, String> {
        EmbeddedHistory::open(&self.path, sealer).map_err(|e| format!("store: {e}"))
    }

    pub fn subscriptions(&self, sealer: Arc<Sealer>) -> Result<EmbeddedSubscriptions, String> {
        EmbeddedSubscriptions::open(&self.path, sealer).map_err(|e| format!("store: {e}"))
    }

    /// Refuses a directory sealed with keys that are not given (`store.encryption`); marks
    /// a new one.
    pub fn check_keys(&self, sealer: &Sealer) -> Result<(), String> {
        match key_check(sealer, self.mark("key-check")?.as_deref())? {
            Some(bytes) => self.set_mark("key-check", &bytes),
            None => Ok(()),
        }
    }

    /// A small file of the store's own (`key-check`, `sealed-with`), if written.
    pub fn mark(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let file = self.path.join(name);
        match std::fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("store: cannot read {}: {e}", file.display())),
        }
    }

    /// Writes a mark whole or not at all (a rename).
    pub fn set_mark(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let file = self.path.join(name);
        let written = file.with_extension("new");
        std::fs::write(&written, bytes)
            .and_then(|_| std::fs::rename(&written, &file))
            .map_err(|e| format!("store: cannot write {}: {e}", file.display()))
    }

    /// The directory must exist and be writable, and the files must take writes.
    pub fn check(&self) -> Result<(), String> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_dir() && !m.permissions().readonly() => {}
            Ok(_) => {
                return Err(format!(
                    "{} is not a writable directory",
                    self.path.display()
                ))
            }
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        }
        self.health.problem().map_or(Ok(()), Err)
    }
}

/// The page cache of each [`File`] (redb's default is 1 GiB): memory stays flat however
/// large the history grows; its newest rows and indexes, which lists read, stay cached.
const FILE_CACHE_BYTES: usize = 32 << 20;

/// One redb file of the embedded store (a small one: subscriptions, the history), whose
/// operations run on the blocking pool.
#[derive(Clone)]
pub struct File {
    db: Arc<redb::Database>,
    /// What it holds, for errors.
    what: &'static str,
}

impl File {
    /// Opens `dir/name` (creating it) and, in one transaction, the tables `create` opens.
    pub fn open(
        dir: &Path,
        name: &str,
        what: &'static str,
        create: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::TableError>,
    ) -> Result<Self, String> {
        let path = dir.join(name);
        let db = redb::Builder::new()
            .set_cache_size(FILE_CACHE_BYTES)
            .create(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        create(&txn).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(File {
            db: Arc::new(db),
            what,
        })
    }

    /// Runs `op` on the blocking pool.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&redb::Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (db, what) = (self.db.clone(), self.what);
        tokio::task::spawn_blocking(move || op(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("{what} task failed: {e}")))?
    }
}

/// redb's errors: a corrupted file is corrupt data; anything else (a full disk, an I/O
/// error, a file being reopened) may pass.
impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Corrupted(_) => StoreError::Corrupt(e.to_string()),
            e => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// redb's narrower error types, through [`redb::Error`].
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(e: $error) -> Self {
                redb::Error::from(e).into()
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
