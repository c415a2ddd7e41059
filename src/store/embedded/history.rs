//! The delivery history in `store.path/history.redb`: each delivered message's row keyed by
//! when it was delivered (so time orders it and the oldest are swept first), its payload's
//! start beside it, and an index of the names it is found by (tenant, subscription, event
//! id, endpoint, `Idempotency-Key`), each entry ending with the row's key.

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::File;
use crate::store::history::{Delivered, HistoryQuery, HistoryStore, Sweep};
use crate::store::queue::{open_body, reseal_body, seal_body};
use crate::store::seal::{ResealPage, Sealer};
use crate::store::StoreError;

/// Delivered time (big-endian ms) and id → the row's JSON.
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
const PAYLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("payloads");
/// Id → the row's key.
const IDS: TableDefinition<&str, &[u8]> = TableDefinition::new("ids");
/// Kind, name, 0, the row's key → nothing.
const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
/// `bytes` (rows and payloads kept), `payloads_swept_ms` (payloads before it are gone).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Rows removed per transaction while sweeping: a sweep never holds the file for long.
const SWEEP_BATCH: usize = 1000;

pub struct EmbeddedHistory {
    file: File,
    /// Seals rows and payloads (`store.encryption`).
    sealer: Arc<Sealer>,
    /// When a write was last made durable (fsync'd): the others are not, until the next.
    last_durable: Arc<Mutex<Instant>>,
}

/// How long written rows may wait for an fsync: a crash loses at most this much of the
/// history (never a message), and a busy history costs one fsync a second.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

fn row_key(delivered_ms: u64, id: &str) -> Vec<u8> {
    let mut key = delivered_ms.to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

fn index_prefix(kind: u8, name: &str) -> Vec<u8> {
    let mut prefix = vec![kind];
    prefix.extend_from_slice(name.as_bytes());
    prefix.push(0);
    prefix
}

fn add_bytes(txn: &WriteTransaction, delta: i64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let now = meta.get("bytes")?.map_or(0, |v| v.value());
    meta.insert("bytes", now.saturating_add_signed(delta))?;
    Ok(())
}

/// Removes one row, its payload and its index entries; the bytes it held.
fn remove_row(txn: &WriteTransaction, key: &[u8], json: &[u8]) -> Result<u64, StoreError> {
    let row = Delivered::parse(json)?;
    let id = row.record.id.as_str();
    let mut freed = json.len() as u64;
    // A message sent again has a newer row under the same id: that one keeps the id.
    let mut ids = txn.open_table(IDS)?;
    let current = ids.get(id)?.is_some_and(|k| k.value() == key);
    if current {
        ids.remove(id)?;
        if let Some(payload) = txn.open_table(PAYLOADS)?.remove(id)? {
            freed += payload.value().len() as u64;
        }
    }
    drop(ids);
    let mut index = txn.open_table(INDEX)?;
    for (kind, name) in row.index_keys() {
        let mut entry = index_prefix(kind, name);
        entry.extend_from_slice(key);
        index.remove(entry.as_slice())?;
    }
    txn.open_table(ROWS)?.remove(key)?;
    Ok(freed)
}

impl EmbeddedHistory {
    pub fn open(dir: &Path, sealer: Arc<Sealer>) -> Result<Self, String> {
        let file = File::open(dir, "history.redb", "history", |txn| {
            txn.open_table(ROWS)?;
            txn.open_table(PAYLOADS)?;
            txn.open_table(IDS)?;
            txn.open_table(INDEX)?;
            txn.open_table(META)?;
            Ok(())
        })?;
        Ok(EmbeddedHistory {
            file,
            sealer,
            last_durable: Arc::new(Mutex::new(Instant::now())),
        })
    }
}

/// The oldest rows (up to a batch) for which `take` holds, removed in one transaction;
/// how many went and the bytes they held.
fn sweep_oldest(
    db: &Database,
    mut take: impl FnMut(u64, u64) -> bool,
) -> Result<(usize, u64), StoreError> {
    let txn = db.begin_write()?;
    let bytes = txn.open_table(META)?.get("bytes")?.map_or(0, |v| v.value());
    let mut doomed = Vec::new();
    {
        let rows = txn.open_table(ROWS)?;
        let payloads = txn.open_table(PAYLOADS)?;
        let mut freed = 0;
        for row in rows.iter()?.take(SWEEP_BATCH) {
            let (key, json) = row?;
            let key = key.value();
            let delivered_ms = u64::from_be_bytes(key[..8].try_into().unwrap_or_default());
            if !take(delivered_ms, bytes.saturating_sub(freed)) {
                break;
            }
            // The key ends with the id: what its payload holds counts too.
            let id = std::str::from_utf8(&key[8..]).unwrap_or_default();
            let payload = payloads.get(id)?.map_or(0, |p| p.value().len());
            freed += (json.value().len() + payload) as u64;
            doomed.push((key.to_vec(), json.value().to_vec()));
        }
    }
    let mut freed = 0;
    for (key, json) in &doomed {
        freed += remove_row(&txn, key, json)?;
    }
    add_bytes(&txn, -(freed as i64))?;
    txn.commit()?;
    Ok((doomed.len(), freed))
}

/// Drops the payloads of rows delivered before `before_ms`, from where the last sweep
/// stopped; a batch at a time.
fn sweep_payloads(db: &Database, before_ms: u64) -> Result<bool, StoreError> {
    let txn = db.begin_write()?;
    let from = txn
        .open_table(META)?
        .get("payloads_swept_ms")?
        .map_or(0, |v| v.value());
    if from >= before_ms {
        return Ok(false);
    }
    let mut ids = Vec::new();
    let mut reached = before_ms;
    {
        let rows = txn.open_table(ROWS)?;
        let start = from.to_be_bytes();
        let end = before_ms.to_be_bytes();
        for row in rows
            .range(start.as_slice()..end.as_slice())?
            .take(SWEEP_BATCH + 1)
        {
            let (key, json) = row?;
            if ids.len() == SWEEP_BATCH {
                reached = u64::from_be_bytes(key.value()[..8].try_into().unwrap_or_default());
                break;
            }
            ids.push(Delivered::parse(json.value())?.record.id);
        }
    }
    let mut freed = 0;
    {
        let mut payloads = txn.open_table(PAYLOADS)?;
        for id in &ids {
            if let Some(payload) = payloads.remove(id.as_str())? {
                freed += payload.value().len() as u64;
            }
        }
    }
    add_bytes(&txn, -(freed as i64))?;
    txn.open_table(META)?.insert("payloads_swept_ms", reached)?;
    txn.commit()?;
    Ok(reached < before_ms)
}

/// One page of rows (and their payloads) sealed otherwise than `sealer` seals now, sealed
/// anew, from after the row key `after`: a read finds them, one write transaction rewrites
/// them, each read again there.
fn reseal_rows(
    db: &Database,
    sealer: &Sealer,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<ResealPage, StoreError> {
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut page = ResealPage::default();
    let mut stale = Vec::new();
    {
        let txn = db.begin_read()?;
        let rows = txn.open_table(ROWS)?;
        let payloads = txn.open_table(PAYLOADS)?;
        for row in rows.range::<&[u8]>((lower, Bound::Unbounded))?.take(limit) {
            let (key, json) = row?;
            page.scanned += 1;
            let record = Delivered::parse(json.value())?.record;
            let payload_current = payloads
                .get(record.id.as_str())?
                .is_none_or(|p| sealer.is_current(p.value()));
            if !payload_current || !record.is_sealed_as(sealer) {
                stale.push((key.value().to_vec(), record.id));
            }
            page.next = Some(const_hex::encode(key.value()));
        }
    }
    if page.scanned < limit as u64 {
        page.next = None;
    }
    if stale.is_empty() {
        return Ok(page);
    }
    let txn = db.begin_write()?;
    let mut added = 0i64;
    {
        let mut rows = txn.open_table(ROWS)?;
        let mut payloads = txn.open_table(PAYLOADS)?;
        for (key, id) in &stale {
            let Some(json) = rows.get(key.as_slice())?.map(|v| v.value().to_vec()) else {
                continue;
            };
            let payload = payloads.get(id.as_str())?.map(|v| v.value().to_vec());
            let resealed = (|| {
                let row = Delivered::parse(&json)?;
                let row = (!row.record.is_sealed_as(sealer))
                    .then(|| row.opened(sealer))
                    .transpose()?;
                let payload = match &payload {
                    Some(payload) => reseal_body(sealer, id, payload)?,
                    None => None,
                };
                Ok::<_, StoreError>((row, payload))
            })();
            match resealed {
                Ok((row, new_payload)) => {
                    if let Some(row) = &row {
                        let encoded = row.encode(sealer);
                        added += encoded.len() as i64 - json.len() as i64;
                        rows.insert(key.as_slice(), encoded.as_slice())?;
                    }
                    if let (Some(new), Some(old)) = (&new_payload, &payload) {
                        added += new.len() as i64 - old.len() as i64;
                        payloads.insert(id.as_str(), new.as_slice())?;
                    }
                    page.resealed += u64::from(row.is_some() || new_payload.is_some());
                }
                Err(e) => {
                    tracing::error!(delivery_id = %id, error = %e, "a history row does not open; it cannot be sealed anew");
                    page.unreadable += 1;
                }
            }
        }
    }
    add_bytes(&txn, added)?;
    txn.commit()?;
    Ok(page)
}

#[async_trait]
impl HistoryStore for EmbeddedHistory {
    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        let after = after
            .map(|a| {
                const_hex::decode(a).map_err(|_| StoreError::Corrupt("a reseal cursor".into()))
            })
            .transpose()?;
        let sealer = self.sealer.clone();
        self.file
            .run(move |db| reseal_rows(db, &sealer, after.as_deref(), limit))
            .await
    }

    async fn keep(&self, rows: Vec<(Delivered, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        let last_durable = self.last_durable.clone();
        let sealer = self.sealer.clone();
        self.file
            .run(move |db| {
                let mut txn = db.begin_write()?;
                let mut last = last_durable.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() < DURABLE_EVERY {
                    txn.set_durability(Durability::None)?;
                } else {
                    *last = Instant::now();
                }
                drop(last);
                let mut added = 0i64;
                // A message delivered again replaces its earlier row.
                let ids = txn.open_table(IDS)?;
                let mut earlier = Vec::new();
                for (row, _) in &rows {
                    if let Some(key) = ids.get(row.record.id.as_str())? {
                        earlier.push(key.value().to_vec());
                    }
                }
                drop(ids);
                for key in earlier {
                    let value = txn
                        .open_table(ROWS)?
                        .get(key.as_slice())?
                        .map(|v| v.value().to_vec());
                    if let Some(value) = value {
                        added -= remove_row(&txn, &key, &value)? as i64;
                    }
                }
                {
                    let mut table = txn.open_table(ROWS)?;
                    let mut payloads = txn.open_table(PAYLOADS)?;
                    let mut ids = txn.open_table(IDS)?;
                    let mut index = txn.open_table(INDEX)?;
                    for (row, payload) in &rows {
                        let key = row_key(row.delivered_ms, &row.record.id);
                        let json = row.encode(&sealer);
                        added += json.len() as i64;
                        table.insert(key.as_slice(), json.as_slice())?;
                        ids.insert(row.record.id.as_str(), key.as_slice())?;
                        if let Some(payload) = payload {
                            let payload = seal_body(&sealer, &row.record.id, payload);
                            added += payload.len() as i64;
                            payloads.insert(row.record.id.as_str(), payload.as_slice())?;
                        }
                        for (kind, name) in row.index_keys() {
                            let mut entry = index_prefix(kind, name);
                            entry.extend_from_slice(&key);
                            index.insert(entry.as_slice(), ())?;
                        }
                    }
                }
                add_bytes(&txn, added)?;
                txn.commit()?;
                Ok(())
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<(Delivered, Option<Vec<u8>>)>, StoreError> {
        let id = id.to_string();
        let sealer = self.sealer.clone();
        self.file
            .run(move |db| {
                let txn = db.begin_read()?;
                let Some(key) = txn.open_table(IDS)?.get(id.as_str())? else {
                    return Ok(None);
                };
                let Some(json) = txn.open_table(ROWS)?.get(key.value())? else {
                    return Ok(None);
                };
                let payload = txn.open_table(PAYLOADS)?.get(id.as_str())?;
                let payload = payload.map(|p| open_body(&sealer, &id, p.value()));
                Ok(Some((
                    Delivered::decode(&sealer, json.value())?,
                    payload.transpose()?,
                )))
            })
            .await
    }

    async fn list(&self, query: &HistoryQuery) -> Result<Vec<Delivered>, StoreError> {
        let query = query.clone();
        let sealer = self.sealer.clone();
        self.file
            .run(move |db| {
                let txn = db.begin_read()?;
                let rows = txn.open_table(ROWS)?;
                let upper = query.after.as_ref().map(|a| row_key(a.delivered_ms, &a.id));
                let mut found = Vec::new();
                let mut consider = |json: &[u8]| -> Result<bool, StoreError> {
                    let row = Delivered::parse(json)?;
                    if query.matches(&row) {
                        found.push(row.opened(&sealer)?);
                    }
                    Ok(found.len() < query.limit)
                };
                match query.index() {
                    Some((kind, name)) => {
                        let prefix = index_prefix(kind, name);
                        let mut end = prefix.clone();
                        match &upper {
                            Some(upper) => end.extend_from_slice(upper),
                            None => *end.last_mut().expect("a prefix ends with 0") = 1,
                        }
                        let index = txn.open_table(INDEX)?;
                        for entry in index.range(prefix.as_slice()..end.as_slice())?.rev() {
                            let entry = entry?.0;
                            let key = &entry.value()[prefix.len()..];
                            if let Some(json) = rows.get(key)? {
                                if !consider(json.value())? {
                                    break;
                                }
                            }
                        }
                    }
                    None => {
                        let end = upper.unwrap_or_else(|| u64::MAX.to_be_bytes().to_vec());
                        for row in rows.range(..end.as_slice())?.rev() {
                            if !consider(row?.1.value())? {
                                break;
                            }
                        }
                    }
                }
                Ok(found)
            })
            .await
    }

    async fn sweep(&self, sweep: Sweep) -> Result<usize, StoreError> {
        self.file
            .run(move |db| {
                let mut swept = 0;
                loop {
                    let (rows, _) = sweep_oldest(db, |delivered_ms, bytes| {
                        delivered_ms < sweep.before_ms || bytes > sweep.max_bytes
                    })?;
                    swept += rows;
                    if rows < SWEEP_BATCH {
                        break;
                    }
                }
                while sweep_payloads(db, sweep.payloads_before_ms)? {}
                Ok(swept)
            })
            .await
    }
}
