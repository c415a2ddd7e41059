//! The queue's transactions other than the group commit: claims, reads, retries, purges,
//! postponements, depth and endpoint states.

use super::tables::*;
use super::*;

/// The synchronous redb operations behind [`EmbeddedQueue`].
impl Redb {
    pub(super) fn claim_due(
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
            let mut tables = Tables::open(&txn, &self.sealer)?;
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
                    let Some(mut raw) = tables.read_raw(&id)? else {
                        continue;
                    };
                    let body = tables
                        .bodies
                        .get(id.as_str())?
                        .map(|v| v.value().to_vec())
                        .unwrap_or_default();
                    tables.move_due(&mut raw, now_ms + lease_ms)?;
                    let opened = raw
                        .opened(&self.sealer)
                        .and_then(|record| Ok((record, open_body(&self.sealer, &id, &body)?)));
                    match opened {
                        Ok(claim) => claimed.push(claim),
                        // Held for its lease, counted and logged each time, until its key
                        // is given again: never delivered half-read, never skipped silently.
                        Err(e) => {
                            tracing::error!(delivery_id = %id, error = %e, "a stored message does not open; it waits");
                        }
                    }
                }
                if claimed.len() == limit {
                    break;
                }
            }
        }
        txn.commit()?;
        Ok(claimed)
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        let bytes = messages.get(id)?.map(|v| v.value().to_vec());
        bytes.map(|b| decode(&self.sealer, &b)).transpose()
    }

    pub(super) fn body(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let bodies = txn.open_table(BODIES)?;
        let stored = bodies.get(id)?.map(|v| v.value().to_vec());
        stored.map(|b| open_body(&self.sealer, id, &b)).transpose()
    }

    pub(super) fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        let mut records = Vec::new();
        for row in messages.iter()? {
            let record = decode(&self.sealer, row?.1.value())?;
            if endpoint.is_none_or(|e| e == record.endpoint)
                && state.is_none_or(|s| s == record.state)
            {
                records.push(record);
            }
        }
        records.sort_by_key(|r| r.created_ms);
        Ok(records)
    }

    pub(super) fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let txn = self.db()?.begin_write()?;
        let found = {
            let mut tables = Tables::open(&txn, &self.sealer)?;
            match tables.read(id)? {
                None => false,
                Some(mut record) => {
                    tables.unindex(&record)?;
                    if let (State::Dead, Some(order)) = (record.state, record.order.as_mut()) {
                        // A replayed dead letter joins the end of its line.
                        order.seq = crate::store::queue::next_order_seq();
                    }
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

    pub(super) fn purge(&self, filter: &DeliveryFilter, state: State) -> Result<usize, StoreError> {
        let mut doomed = self.list(filter.endpoint.as_deref(), Some(state))?;
        doomed.retain(|r| filter.matches(r));
        let txn = self.db()?.begin_write()?;
        let mut purged = 0;
        {
            let mut tables = Tables::open(&txn, &self.sealer)?;
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

    pub(super) fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError> {
        let txn = self.begin_unsynced()?;
        {
            let mut tables = Tables::open(&txn, &self.sealer)?;
            if let Some(mut raw) = tables.read_raw(id)?.filter(|r| r.state == State::Pending) {
                tables.move_due(&mut raw, due_ms)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The earliest due time over the endpoints that are not disabled.
    pub(super) fn next_due(&self) -> Result<Option<u64>, StoreError> {
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

    pub(super) fn depth(&self) -> Result<Vec<Depth>, StoreError> {
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

    pub(super) fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENDPOINTS)?;
        let mut states = Vec::new();
        for row in table.iter()? {
            let (name, bytes) = row?;
            states.push((name.value().to_string(), endpoint_state(bytes.value())?));
        }
        Ok(states)
    }

    pub(super) fn set_endpoint_state(
        &self,
        endpoint: &str,
        state: &EndpointState,
    ) -> Result<(), StoreError> {
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
