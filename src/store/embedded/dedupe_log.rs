//! The file half of the embedded dedupe store: delivered ids appended to segment files
//! `store.path/dedupe-<n>.log`.
//!
//! Each batch is written at once, so a killed process loses nothing written; the file is
//! synced at most every [`SYNC_EVERY`], so a power cut loses at most that much. An fsync
//! per batch (over a thousand a second under load) cost a quarter of a core in I/O
//! submission on a virtual disk; a B-tree before it (redb) also rewrote a 4 KiB page per
//! random id. Nothing is rewritten:
//! a segment is closed after [`SEGMENT_SPAN`] or [`SEGMENT_BYTES`], and deleted once the
//! last id in it has expired, so the files hold the window and at most one segment more.
//!
//! Record: `crc32 (u32) | key length (u32) | expiry, unix ms (u64) | status (u16) | key`,
//! little-endian; the checksum covers what follows it. Reading a segment stops at its first
//! short or damaged record: a write cut off by a crash or a full disk. After a failed write
//! the next batch goes to a new segment, so nothing is ever appended after a damaged record.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// A segment takes appends this long at most...
const SEGMENT_SPAN: Duration = Duration::from_secs(600);
/// ...or up to this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Written ids are synced to disk this often at most.
pub const SYNC_EVERY: Duration = Duration::from_millis(20);
/// Checksum, key length, expiry, status.
const HEADER: usize = 4 + 4 + 8 + 2;

/// One delivered id: its store key, when it leaves the window (unix ms), the app's status.
pub type Record<'a> = (&'a str, u64, u16);

pub struct DedupeLog {
    dir: PathBuf,
    /// Held while the log is open: a second process on the same directory is refused.
    _lock: File,
    /// Closed segments by number, with the latest expiry of the ids in each.
    closed: BTreeMap<u64, u64>,
    current: Option<Segment>,
    next: u64,
    /// When the current segment was last synced, if it was written since.
    unsynced_since: Option<Instant>,
}

struct Segment {
    number: u64,
    file: File,
    opened: Instant,
    len: u64,
    latest_expiry: u64,
}

impl DedupeLog {
    /// Reads every segment in `dir`, oldest first, handing each record to `each` (a later
    /// record of a key supersedes an earlier one), deletes the segments wholly expired, and
    /// opens a new segment for appends. An old `dedupe.redb` is carried over and removed.
    pub fn open(dir: &Path, now_ms: u64, mut each: impl FnMut(Record)) -> Result<Self, String> {
        let lock_path = dir.join("dedupe.lock");
        let lock = File::create(&lock_path)
            .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
        lock.try_lock().map_err(|e| {
            format!(
                "cannot lock {} (is another hookgate using it?): {e}",
                lock_path.display()
            )
        })?;
        let mut numbers = Vec::new();
        let listing =
            fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let number = name
                .to_str()
                .and_then(|n| n.strip_prefix("dedupe-")?.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok());
            numbers.extend(number);
        }
        numbers.sort_unstable();
        let mut log = DedupeLog {
            dir: dir.to_path_buf(),
            _lock: lock,
            closed: BTreeMap::new(),
            current: None,
            next: numbers.last().map_or(0, |n| n + 1),
            unsynced_since: None,
        };
        for number in numbers {
            let path = log.segment_path(number);
            let bytes =
                fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut latest_expiry = 0;
            for record in records(&bytes) {
                latest_expiry = latest_expiry.max(record.1);
                each(record);
            }
            log.closed.insert(number, latest_expiry);
        }
        log.drop_expired(now_ms);
        log.start_segment().map_err(|e| {
            format!(
                "cannot create {}: {e}",
                log.segment_path(log.next).display()
            )
        })?;
        log.migrate_redb(now_ms, each)?;
        Ok(log)
    }

    /// Appends `records`, and syncs the file if the last sync is [`SYNC_EVERY`] old. After
    /// an error, the next call starts a new segment.
    pub fn append<'a>(&mut self, records: impl IntoIterator<Item = Record<'a>>) -> io::Result<()> {
        let rotate = self
            .current
            .as_ref()
            .is_some_and(|s| s.opened.elapsed() >= SEGMENT_SPAN || s.len >= SEGMENT_BYTES);
        if rotate || self.current.is_none() {
            self.sync()?;
            self.close_segment();
            self.start_segment()?;
        }
        let Some(segment) = self.current.as_mut() else {
            unreachable!("a segment was just started");
        };
        let mut buf = Vec::new();
        for (key, expires_ms, status) in records {
            encode(&mut buf, key, expires_ms, status);
            segment.latest_expiry = segment.latest_expiry.max(expires_ms);
        }
        if let Err(e) = segment.file.write_all(&buf) {
            // Whatever part of `buf` reached the file ends this segment.
            self.close_segment();
            return Err(e);
        }
        segment.len += buf.len() as u64;
        let unsynced_since = *self.unsynced_since.get_or_insert_with(Instant::now);
        if unsynced_since.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// How long until written ids are due to be synced, if any wait.
    pub fn sync_due_in(&self) -> Option<Duration> {
        self.unsynced_since
            .map(|since| SYNC_EVERY.saturating_sub(since.elapsed()))
    }

    /// Syncs what was written to the current segment.
    pub fn sync(&mut self) -> io::Result<()> {
        let Some(segment) = self.current.as_mut() else {
            return Ok(());
        };
        if self.unsynced_since.is_none() {
            return Ok(());
        }
        match segment.file.sync_data() {
            Ok(()) => {
                self.unsynced_since = None;
                Ok(())
            }
            Err(e) => {
                // Linux may drop the unsynced pages after a failed fsync: start afresh.
                self.unsynced_since = None;
                self.close_segment();
                Err(e)
            }
        }
    }

    /// Deletes the closed segments whose ids have all expired.
    pub fn drop_expired(&mut self, now_ms: u64) {
        let expired: Vec<u64> = self
            .closed
            .iter()
            .filter(|(_, latest)| **latest <= now_ms)
            .map(|(number, _)| *number)
            .collect();
        for number in expired {
            let path = self.segment_path(number);
            match fs::remove_file(&path) {
                Ok(()) => {
                    self.closed.remove(&number);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.closed.remove(&number);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete an expired dedupe segment")
                }
            }
        }
    }

    fn segment_path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("dedupe-{number:016}.log"))
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let number = self.next;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.segment_path(number))?;
        // The new name must be on disk too, or a crash could lose the file with its ids.
        File::open(&self.dir)?.sync_all()?;
        self.next += 1;
        self.current = Some(Segment {
            number,
            file,
            opened: Instant::now(),
            len: 0,
            latest_expiry: 0,
        });
        Ok(())
    }

    fn close_segment(&mut self) {
        if let Some(segment) = self.current.take() {
            self.closed.insert(segment.number, segment.latest_expiry);
        }
    }

    /// Carries the ids of the redb file of earlier versions over into the log.
    fn migrate_redb(&mut self, now_ms: u64, mut each: impl FnMut(Record)) -> Result<(), String> {
        const DONE: TableDefinition<&str, (u64, u16)> = TableDefinition::new("dedupe_done");
        let path = self.dir.join("dedupe.redb");
        if !path.exists() {
            return Ok(());
        }
        let mut kept: Vec<(String, u64, u16)> = Vec::new();
        let mut read = || -> Result<(), redb::Error> {
            let db = Database::open(&path)?;
            let txn = db.begin_read()?;
            let table = match txn.open_table(DONE) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            for row in table.iter()? {
                let (key, value) = row?;
                let (expires_ms, status) = value.value();
                if expires_ms > now_ms {
                    kept.push((key.value().to_string(), expires_ms, status));
                }
            }
            Ok(())
        };
        read().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let records = || kept.iter().map(|(k, e, s)| (k.as_str(), *e, *s));
        self.append(records())
            .map_err(|e| format!("cannot carry {} over: {e}", path.display()))?;
        records().for_each(&mut each);
        fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        tracing::info!(ids = kept.len(), "dedupe ids carried over from dedupe.redb");
        Ok(())
    }
}

fn encode(buf: &mut Vec<u8>, key: &str, expires_ms: u64, status: u16) {
    // An id comes from a request, whose size hookgate bounds far below 4 GiB.
    let key = &key.as_bytes()[..key.len().min(u32::MAX as usize)];
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&expires_ms.to_le_bytes());
    buf.extend_from_slice(&status.to_le_bytes());
    buf.extend_from_slice(key);
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The records of one segment, up to its first short or damaged one.
fn records(mut bytes: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let header = bytes.get(..HEADER)?;
        let crc = u32::from_le_bytes(header[0..4].try_into().ok()?);
        let key_len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        let expires_ms = u64::from_le_bytes(header[8..16].try_into().ok()?);
        let status = u16::from_le_bytes(header[16..18].try_into().ok()?);
        let record = bytes.get(..HEADER + key_len)?;
        if crc32fast::hash(&record[4..]) != crc {
            return None;
        }
        let key = std::str::from_utf8(&record[HEADER..]).ok()?;
        bytes = &bytes[HEADER + key_len..];
        Some((key, expires_ms, status))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(dir: &Path, now_ms: u64) -> (DedupeLog, Vec<(String, u64, u16)>) {
        let mut seen = Vec::new();
        let log =
            DedupeLog::open(dir, now_ms, |(k, e, s)| seen.push((k.to_string(), e, s))).unwrap();
        (log, seen)
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, seen) = reopen(dir.path(), 0);
        assert!(seen.is_empty());
        log.append([("r:a", 100, 200), ("r:b", 100, 201)]).unwrap();
        let path = log.segment_path(0);
        drop(log);
        // A crash in the middle of the next record.
        let mut torn = Vec::new();
        encode(&mut torn, "r:c", 100, 202);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() - 2]).unwrap();
        let (mut log, seen) = reopen(dir.path(), 0);
        assert_eq!(seen, [("r:a".into(), 100, 200), ("r:b".into(), 100, 201)]);
        // Appends go to a new segment, after the damaged one.
        log.append([("r:d", 100, 203)]).unwrap();
        drop(log);
        let (_, seen) = reopen(dir.path(), 0);
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], ("r:d".into(), 100, 203));
    }

    #[test]
    fn a_second_process_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, _) = reopen(dir.path(), 0);
        let second = DedupeLog::open(dir.path(), 0, |_| {});
        assert!(second.is_err_and(|e| e.contains("another hookgate")));
    }

    #[test]
    fn a_damaged_record_ends_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = reopen(dir.path(), 0);
        log.append([("r:a", 100, 200), ("r:b", 100, 200)]).unwrap();
        let path = log.segment_path(0);
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let (_, seen) = reopen(dir.path(), 0);
        assert_eq!(seen, [("r:a".into(), 100, 200)]);
    }

    #[test]
    fn segments_are_deleted_once_all_their_ids_expired() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = reopen(dir.path(), 0);
        log.append([("r:a", 100, 200), ("r:b", 300, 200)]).unwrap();
        drop(log);
        let (mut log, seen) = reopen(dir.path(), 200);
        assert_eq!(seen.len(), 2, "the segment still holds r:b's window");
        log.append([("r:c", 500, 200)]).unwrap();
        log.close_segment();
        log.drop_expired(400);
        let names = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(".log"))
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(dir.path()), ["dedupe-0000000000000001.log"]);
        log.drop_expired(500);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn ids_in_an_old_redb_file_are_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        {
            const DONE: TableDefinition<&str, (u64, u16)> = TableDefinition::new("dedupe_done");
            let db = Database::create(dir.path().join("dedupe.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(DONE).unwrap();
                table.insert("r:kept", (1_000, 200)).unwrap();
                table.insert("r:expired", (10, 200)).unwrap();
            }
            txn.commit().unwrap();
        }
        let (_, seen) = reopen(dir.path(), 100);
        assert_eq!(seen, [("r:kept".into(), 1_000, 200)]);
        assert!(!dir.path().join("dedupe.redb").exists());
        let (_, seen) = reopen(dir.path(), 100);
        assert_eq!(seen, [("r:kept".into(), 1_000, 200)], "now from the log");
    }
}
