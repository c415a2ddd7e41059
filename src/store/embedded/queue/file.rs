//! The queue's file: opened (and upgraded from older layouts) once, and reopened after
//! a write error, when redb refuses every write until it is.

use super::tables::*;
use super::*;

/// After a write error (a full disk, an I/O error) redb refuses every write until the
/// file is reopened; [`Redb::recover`] does that, at most this often.
pub(super) const REOPEN_EVERY: Duration = Duration::from_millis(250);

pub(super) struct Redb {
    pub(super) path: PathBuf,
    /// `None` between a broken handle's drop and a successful reopen.
    pub(super) db: RwLock<Option<Arc<Database>>>,
    pub(super) health: Arc<StoreHealth>,
    pub(super) last_recovery: Mutex<Option<Instant>>,
    /// Which endpoint a claim starts with, turned by one each claim, so one endpoint's
    /// backlog cannot keep another's due messages waiting.
    pub(super) claim_turn: AtomicUsize,
    /// Seals bodies, inline secrets and answers (`store.encryption`).
    pub(super) sealer: Arc<Sealer>,
}

impl Redb {
    pub(super) fn open(
        dir: &Path,
        health: Arc<StoreHealth>,
        sealer: Arc<Sealer>,
    ) -> Result<Self, String> {
        let path = dir.join("outbound.redb");
        let db = Self::open_file(&path, &sealer)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(Redb {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            health,
            last_recovery: Mutex::new(None),
            claim_turn: AtomicUsize::new(0),
            sealer,
        })
    }

    pub(super) fn open_file(path: &Path, sealer: &Sealer) -> Result<Database, StoreError> {
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
            let mut tables = Tables::open(&txn, sealer)?;
            // A file from before the per-endpoint indexes and counts: build them once.
            if tables.counts.is_empty()? && !tables.messages.is_empty()? {
                let mut records = Vec::new();
                for row in tables.messages.iter()? {
                    records.push(parse(row?.1.value())?);
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

    pub(super) fn db(&self) -> Result<Arc<Database>, StoreError> {
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
    pub(super) fn begin_unsynced(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::None)?;
        Ok(txn)
    }

    /// After a failed operation: if the file no longer takes writes, reopen it.
    pub(super) fn recover(&self) {
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
        match Self::open_file(&self.path, &self.sealer) {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                self.health.recovered("queue");
            }
            Err(e) => self.health.failed("queue", &e),
        }
    }
}
