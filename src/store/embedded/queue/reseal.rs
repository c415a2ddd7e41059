//! Rewriting messages sealed otherwise than the store seals now (`store.encryption`: a
//! rotation, or a store sealed in place), a page at a time in id order. A read finds the
//! stale ones; one write transaction rewrites them, each read again there, so a message
//! that moved meanwhile keeps its move.

use std::ops::Bound;

use super::tables::*;
use super::*;
use crate::store::queue::reseal_body;
use crate::store::seal::ResealPage;

impl Redb {
    pub(super) fn reseal_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = ResealPage::default();
        let mut stale = Vec::new();
        {
            let txn = self.db()?.begin_read()?;
            let messages = txn.open_table(MESSAGES)?;
            let bodies = txn.open_table(BODIES)?;
            for row in messages
                .range::<&str>((lower, Bound::Unbounded))?
                .take(limit)
            {
                let (id, raw) = row?;
                let id = id.value().to_string();
                page.scanned += 1;
                let body_current = bodies
                    .get(id.as_str())?
                    .is_none_or(|b| self.sealer.is_current(b.value()));
                if !body_current || !parse(raw.value())?.is_sealed_as(&self.sealer) {
                    stale.push(id.clone());
                }
                page.next = Some(id);
            }
        }
        if page.scanned < limit as u64 {
            page.next = None;
        }
        if stale.is_empty() {
            return Ok(page);
        }
        let txn = self.db()?.begin_write()?;
        {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut bodies = txn.open_table(BODIES)?;
            for id in &stale {
                let Some(raw) = messages.get(id.as_str())?.map(|v| v.value().to_vec()) else {
                    continue;
                };
                let record = parse(&raw)?;
                let body = bodies.get(id.as_str())?.map(|v| v.value().to_vec());
                let resealed = (|| {
                    let record = (!record.is_sealed_as(&self.sealer))
                        .then(|| record.opened(&self.sealer))
                        .transpose()?;
                    let body = match &body {
                        Some(body) => reseal_body(&self.sealer, id, body)?,
                        None => None,
                    };
                    Ok::<_, StoreError>((record, body))
                })();
                match resealed {
                    Ok((record, body)) => {
                        if let Some(record) = &record {
                            messages
                                .insert(id.as_str(), encode(&self.sealer, record).as_slice())?;
                        }
                        if let Some(body) = &body {
                            bodies.insert(id.as_str(), body.as_slice())?;
                        }
                        page.resealed += u64::from(record.is_some() || body.is_some());
                    }
                    Err(e) => {
                        tracing::error!(delivery_id = %id, error = %e, "a stored message does not open; it cannot be sealed anew");
                        page.unreadable += 1;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(page)
    }
}
