//! The queue's tables in redb, the indexes kept with the messages, and their encoding.

use super::*;

/// id → record (JSON)
pub(super) const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_messages");
/// id → body bytes
pub(super) const BODIES: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_bodies");
/// (endpoint, due in unix ms, id) for pending messages.
pub(super) const DUE: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("outbound_due_by_endpoint");
/// (due in unix ms, id): the due index of files written before it was kept per endpoint,
/// moved into [`DUE`] when such a file is opened.
pub(super) const OLD_DUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("outbound_due");
/// (endpoint, accepted at in unix ms, id) for pending messages: an endpoint's first row is
/// its oldest waiting message.
pub(super) const WAITING: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("outbound_waiting");
/// (order key, seq, id) for pending messages in a line (`Record::order`): a key's first row
/// is the head, the only one of its line in [`DUE`].
pub(super) const ORDER: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("outbound_order");
/// (endpoint, bucket) → messages in it.
pub(super) const COUNTS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("outbound_counts");
/// endpoint name → its state (JSON); endpoints without a row are enabled
pub(super) const ENDPOINTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("outbound_endpoints");
/// One key, rewritten to find out whether the file takes writes: an empty commit passes on
/// a full disk, and so do small ones while the file has free pages. [`PROBE_BYTES`] is
/// more than most messages, so a probe that passes means accepts can pass again.
pub(super) const PROBE: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_probe");
pub(super) const PROBE_BYTES: usize = 64 * 1024;
/// "endpoint:Idempotency-Key" → (expiry in unix ms, delivery id)
pub(super) const IDEMPOTENCY: TableDefinition<&str, (u64, &str)> =
    TableDefinition::new("outbound_idempotency");
/// (expiry in unix ms, key) for every idempotency key: expired keys are swept in order.
pub(super) const IDEMPOTENCY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("outbound_idempotency_expiry");
/// Expired idempotency keys removed by one enqueue, which adds at most one: the table
/// holds little more than the keys still inside their window.
pub(super) const SWEEP_PER_ENQUEUE: usize = 4;
/// redb's page cache (its default is 1 GiB): memory stays flat however long the backlog;
/// due work is read from the front of the indexes, which stays cached.
pub(super) const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Sorts after every id and endpoint name: the upper end of a range over them.
pub(super) const LAST: &str = "\u{10ffff}";

/// Removes a few idempotency keys whose window ended by `now_ms`, oldest first. A key
/// given again after its window has a newer expiry: its older index entry goes alone.
pub(super) fn sweep_expired(
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

/// A record as stored: JSON, with its secrets and answers sealed (`store.encryption`).
pub(super) fn encode(sealer: &Sealer, record: &Record) -> Vec<u8> {
    let json = if sealer.enabled() {
        serde_json::to_vec(&record.sealed(sealer))
    } else {
        serde_json::to_vec(record)
    };
    json.expect("a record always serializes")
}

/// A stored record, opened.
pub(super) fn decode(sealer: &Sealer, bytes: &[u8]) -> Result<Record, StoreError> {
    parse(bytes)?.opened(sealer)
}

/// A stored record as it is kept: what is sealed stays sealed.
pub(super) fn parse(bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("record: {e}")))
}

/// The message tables of one write transaction. Every change to a message goes through
/// [`Tables::unindex`] (before) and [`Tables::store`] (after), so the due index, the
/// waiting index and the counts always agree with the messages.
pub(super) struct Tables<'t> {
    pub(super) messages: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) bodies: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) due: redb::Table<'t, (&'static str, u64, &'static str), ()>,
    pub(super) waiting: redb::Table<'t, (&'static str, u64, &'static str), ()>,
    pub(super) counts: redb::Table<'t, (&'static str, &'static str), u64>,
    pub(super) order: redb::Table<'t, (&'static str, u64, &'static str), ()>,
    pub(super) sealer: &'t Sealer,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction, sealer: &'t Sealer) -> Result<Self, StoreError> {
        Ok(Tables {
            sealer,
            messages: txn.open_table(MESSAGES)?,
            bodies: txn.open_table(BODIES)?,
            due: txn.open_table(DUE)?,
            waiting: txn.open_table(WAITING)?,
            counts: txn.open_table(COUNTS)?,
            order: txn.open_table(ORDER)?,
        })
    }

    pub(super) fn read(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.read_raw(id)?
            .map(|r| r.opened(self.sealer))
            .transpose()
    }

    /// A message as it is kept, sealed parts still sealed.
    pub(super) fn read_raw(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let bytes = self.messages.get(id)?.map(|v| v.value().to_vec());
        bytes.map(|b| parse(&b)).transpose()
    }

    pub(super) fn count(
        &mut self,
        endpoint: &str,
        bucket: Bucket,
        delta: i64,
    ) -> Result<(), StoreError> {
        let key = (endpoint, bucket.as_str());
        let current = self.counts.get(key)?.map_or(0, |v| v.value());
        self.counts
            .insert(key, current.saturating_add_signed(delta))?;
        Ok(())
    }

    /// The first two ids of a line, in order.
    fn line_front(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.order
            .range((key, 0, "")..=(key, u64::MAX, LAST))?
            .take(2)
            .map(|row| row.map(|(k, _)| k.value().2.to_string()))
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// Whether a pending message is in [`DUE`]: always, unless it waits behind an
    /// earlier one of its line.
    pub(super) fn is_due_indexed(&self, record: &Record) -> Result<bool, StoreError> {
        match &record.order {
            None => Ok(true),
            Some(order) => Ok(self.line_front(&order.key)?.first() == Some(&record.id)),
        }
    }

    /// Puts a line's message in [`DUE`] (`true`) or takes it out, at its stored due time.
    fn set_due_indexed(&mut self, id: &str, indexed: bool) -> Result<(), StoreError> {
        let Some(record) = self.read_raw(id)? else {
            return Ok(());
        };
        let key = (record.endpoint.as_str(), record.due_ms, id);
        if indexed {
            self.due.insert(key, ())?;
        } else {
            self.due.remove(key)?;
        }
        Ok(())
    }

    /// Adds a message's index entries and count. A message that becomes the head of its
    /// line (a retried head, stored again) puts the one behind it out of [`DUE`] again.
    pub(super) fn index(&mut self, record: &Record) -> Result<(), StoreError> {
        let (endpoint, id) = (record.endpoint.as_str(), record.id.as_str());
        if record.state == State::Pending {
            self.waiting.insert((endpoint, record.created_ms, id), ())?;
            let front = match &record.order {
                Some(order) => {
                    self.order.insert((order.key.as_str(), order.seq, id), ())?;
                    self.line_front(&order.key)?
                }
                None => vec![id.to_string()],
            };
            if front.first().map(String::as_str) == Some(id) {
                self.due.insert((endpoint, record.due_ms, id), ())?;
                if let Some(behind) = front.get(1) {
                    self.set_due_indexed(behind, false)?;
                }
            }
        }
        self.count(endpoint, record.bucket(), 1)
    }

    /// Removes a stored message's index entries and count, before it changes or leaves. A
    /// line's head that leaves it makes the next one due.
    pub(super) fn unindex(&mut self, record: &Record) -> Result<(), StoreError> {
        let (endpoint, id) = (record.endpoint.as_str(), record.id.as_str());
        if record.state == State::Pending {
            self.waiting.remove((endpoint, record.created_ms, id))?;
            self.due.remove((endpoint, record.due_ms, id))?;
            if let Some(order) = &record.order {
                let was_head = self.line_front(&order.key)?.first().map(String::as_str) == Some(id);
                self.order.remove((order.key.as_str(), order.seq, id))?;
                if was_head {
                    if let Some(next) = self.line_front(&order.key)?.first() {
                        self.set_due_indexed(&next.clone(), true)?;
                    }
                }
            }
        }
        self.count(endpoint, record.bucket(), -1)
    }

    /// Writes a message (new, or changed after [`Tables::unindex`]) and indexes it.
    pub(super) fn store(&mut self, record: &Record) -> Result<(), StoreError> {
        self.store_encoded(record, &encode(self.sealer, record))
    }

    /// [`Tables::store`] with the record already encoded.
    pub(super) fn store_encoded(
        &mut self,
        record: &Record,
        encoded: &[u8],
    ) -> Result<(), StoreError> {
        self.messages.insert(record.id.as_str(), encoded)?;
        self.index(record)
    }

    pub(super) fn delete(&mut self, record: &Record) -> Result<(), StoreError> {
        self.unindex(record)?;
        self.messages.remove(record.id.as_str())?;
        self.bodies.remove(record.id.as_str())?;
        Ok(())
    }

    /// Moves a pending message's due time: nothing else about it changes (one waiting
    /// behind its line's head stays out of [`DUE`]). `raw` is the message as it is kept
    /// ([`Tables::read_raw`]), written back with its sealed parts untouched: moving a due
    /// time opens and seals nothing.
    pub(super) fn move_due(&mut self, raw: &mut Record, due_ms: u64) -> Result<(), StoreError> {
        self.reindex_due(raw, due_ms)?;
        let json = serde_json::to_vec(raw).expect("a record always serializes");
        self.messages.insert(raw.id.as_str(), json.as_slice())?;
        Ok(())
    }

    fn reindex_due(&mut self, record: &mut Record, due_ms: u64) -> Result<(), StoreError> {
        let indexed = self.is_due_indexed(record)?;
        let (endpoint, id) = (record.endpoint.as_str(), record.id.as_str());
        self.due.remove((endpoint, record.due_ms, id))?;
        if indexed {
            self.due.insert((endpoint, due_ms, id), ())?;
        }
        record.due_ms = due_ms;
        Ok(())
    }
}

/// Endpoints with messages waiting (pending or scheduled), in name order.
pub(super) fn endpoints_with_work(
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

pub(super) fn endpoint_state(bytes: &[u8]) -> Result<EndpointState, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("endpoint state: {e}")))
}

/// Endpoints an operator (or a 410) disabled: their messages are not claimed.
pub(super) fn disabled_endpoints(
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
