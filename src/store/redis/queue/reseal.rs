//! Rewriting messages sealed otherwise than the store seals now (`store.encryption`), a
//! page at a time: `ZSCAN` of one partition's `all` (every message present for the whole
//! pass is met at least once), the messages' parts read in one pipeline, and each stale
//! part replaced only if still as read ([`Replacer`]), so a message that moved or was
//! attempted meanwhile keeps what happened to it.

use super::*;
use crate::store::queue::reseal_body;
use crate::store::redis::replace::{Place, Replacement};
use crate::store::seal::ResealPage;

/// A message's parts as read: its hash's `meta` and `body`, and its attempts.
type Parts = (Option<String>, Option<Vec<u8>>, Vec<String>);

impl RedisQueue {
    /// One page: from `after` (`<partition>:<ZSCAN cursor>`), about `limit` messages of one
    /// partition.
    pub(super) async fn reseal(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        let (index, cursor) = match after.as_deref() {
            None => (0, 0),
            Some(at) => at
                .split_once(':')
                .and_then(|(p, c)| Some((p.parse::<usize>().ok()?, c.parse::<u64>().ok()?)))
                .filter(|(p, _)| *p < self.partitions.len())
                .ok_or_else(|| StoreError::Corrupt(format!("a reseal cursor {at:?}")))?,
        };
        let partition = &self.partitions[index];
        let (next, ids) = self
            .store
            .zscan(partition.key("all"), cursor, limit)
            .await?;
        let parts: Vec<Parts> = if ids.is_empty() {
            Vec::new()
        } else {
            self.store
                .run(|mut c| {
                    let mut pipe = redis::pipe();
                    for id in &ids {
                        pipe.cmd("HMGET")
                            .arg(partition.message(id))
                            .arg("meta")
                            .arg("body");
                        pipe.cmd("LRANGE")
                            .arg(partition.attempts(id))
                            .arg(0)
                            .arg(-1);
                    }
                    async move {
                        let replies: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                        let mut replies = replies.into_iter();
                        let mut parts = Vec::new();
                        while let (Some(fields), Some(attempts)) = (replies.next(), replies.next())
                        {
                            let (meta, body) = redis::FromRedisValue::from_redis_value(fields)?;
                            let attempts = redis::FromRedisValue::from_redis_value(attempts)?;
                            parts.push((meta, body, attempts));
                        }
                        Ok(parts)
                    }
                })
                .await?
        };
        let mut page = ResealPage {
            scanned: ids.len() as u64,
            next: match (next, index + 1 < self.partitions.len()) {
                (0, false) => None,
                (0, true) => Some(format!("{}:0", index + 1)),
                (next, _) => Some(format!("{index}:{next}")),
            },
            ..ResealPage::default()
        };
        for (id, parts) in ids.iter().zip(parts) {
            match self.stale_parts(partition, id, parts) {
                Ok(replacements) if replacements.is_empty() => {}
                Ok(replacements) => {
                    let (replaced, _) = self.replacer.replace(&self.store, &replacements).await?;
                    page.resealed += u64::from(replaced > 0);
                }
                Err(e) => {
                    tracing::error!(delivery_id = %id, error = %e, "a stored message does not open; it cannot be sealed anew");
                    page.unreadable += 1;
                }
            }
        }
        Ok(page)
    }

    /// A message's parts sealed otherwise than the store seals now, sealed anew.
    fn stale_parts(
        &self,
        partition: &Partition,
        id: &str,
        (meta, body, attempts): Parts,
    ) -> Result<Vec<Replacement>, StoreError> {
        let sealer = &self.sealer;
        let mut replacements = Vec::new();
        if let Some(meta) = meta {
            let record: Record = serde_json::from_str(&meta).map_err(|e| corrupt("record", e))?;
            if !record.is_sealed_as(sealer) {
                let resealed = record.opened(sealer)?.sealed(sealer);
                replacements.push(Replacement {
                    place: Place::Field(partition.message(id), "meta"),
                    new: serde_json::to_vec(&resealed).expect("a record always serializes"),
                    read: meta.into_bytes(),
                });
            }
        }
        if let Some(body) = body {
            if let Some(new) = reseal_body(sealer, id, &body)? {
                replacements.push(Replacement {
                    place: Place::Field(partition.message(id), "body"),
                    read: body,
                    new,
                });
            }
        }
        for (index, stored) in attempts.into_iter().enumerate() {
            let mut attempt: Attempt =
                serde_json::from_str(&stored).map_err(|e| corrupt("attempt", e))?;
            if attempt.response.is_empty() || sealer.is_current_text(&attempt.response) {
                continue;
            }
            attempt.seal_answer(id, &|table, place, value| {
                let plain = sealer
                    .open_text(table, place, value)
                    .map_err(|e| StoreError::Sealed(format!("{table} of {place}: {e}")))?;
                Ok(sealer.seal_text(table, place, &plain))
            })?;
            replacements.push(Replacement {
                place: Place::Item(partition.attempts(id), index),
                new: serde_json::to_vec(&attempt).expect("an attempt always serializes"),
                read: stored.into_bytes(),
            });
        }
        Ok(replacements)
    }
}
