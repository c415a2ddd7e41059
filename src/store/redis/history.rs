//! The delivery history on Redis, shared by replicas, under the hash tag `{history}` (one
//! slot on a cluster): each row a JSON string (`row:<id>`) and its payload's start
//! (`payload:<id>`); sorted sets by delivered time of every row (`all`), of those with a
//! payload (`p`), and of each name a row is found by (`s:`, `t:`, `e:`, `k:` and the
//! name); and the bytes kept (`bytes`). Writes and removals are scripts, so a row and its
//! entries come and go together.

use std::sync::Arc;

use async_trait::async_trait;
use redis::Script;

use super::replace::{Place, Replacement, Replacer};
use super::RedisStore;
use crate::store::history::{Cursor, Delivered, HistoryQuery, HistoryStore, Sweep};
use crate::store::queue::{open_body, reseal_body, seal_body};
use crate::store::seal::{ResealPage, Sealer};
use crate::store::StoreError;

/// KEYS: all, p, bytes, then per row: row, payload, its index sets. ARGV per row: id,
/// delivered ms, json, payload ("" for none), how many index sets.
const KEEP: &str = r"
local k, added = 4, 0
local i = 1
while i <= #ARGV do
  local id, ms, json, payload, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  redis.call('SET', KEYS[k], json)
  added = added + #json
  if payload ~= '' then
    redis.call('SET', KEYS[k + 1], payload)
    redis.call('ZADD', KEYS[2], ms, id)
    added = added + #payload
  end
  redis.call('ZADD', KEYS[1], ms, id)
  for j = 1, n do redis.call('ZADD', KEYS[k + 1 + j], ms, id) end
  k = k + 2 + n
  i = i + 5
end
return redis.call('INCRBY', KEYS[3], added)
";

/// KEYS: all, p, bytes, then per row: row, payload, its index sets. ARGV per row: id, how
/// many index sets. Answers the bytes freed.
const REMOVE: &str = r"
local k, freed = 4, 0
local i = 1
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  freed = freed + redis.call('STRLEN', KEYS[k]) + redis.call('STRLEN', KEYS[k + 1])
  redis.call('DEL', KEYS[k], KEYS[k + 1])
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  for j = 1, n do redis.call('ZREM', KEYS[k + 1 + j], id) end
  k = k + 2 + n
  i = i + 2
end
redis.call('DECRBY', KEYS[3], freed)
return freed
";

/// KEYS: p, bytes, payload keys. ARGV: their ids.
const DROP_PAYLOADS: &str = r"
local freed = 0
for i, id in ipairs(ARGV) do
  freed = freed + redis.call('STRLEN', KEYS[i + 2])
  redis.call('DEL', KEYS[i + 2])
  redis.call('ZREM', KEYS[1], id)
end
redis.call('DECRBY', KEYS[2], freed)
return freed
";

/// Rows read or removed per round trip.
const BATCH: usize = 500;

pub struct RedisHistory {
    store: Arc<RedisStore>,
    /// Seals rows and payloads (`store.encryption`).
    sealer: Arc<Sealer>,
    keep: Script,
    remove: Script,
    drop_payloads: Script,
    replacer: Replacer,
}

impl RedisHistory {
    pub fn new(store: Arc<RedisStore>, sealer: Arc<Sealer>) -> Self {
        RedisHistory {
            store,
            sealer,
            keep: Script::new(KEEP),
            remove: Script::new(REMOVE),
            drop_payloads: Script::new(DROP_PAYLOADS),
            replacer: Replacer::new(),
        }
    }

    fn key(&self, name: &str) -> String {
        self.store.key(&format!("{{history}}:{name}"))
    }

    fn index_key(&self, kind: u8, name: &str) -> String {
        self.key(&format!("{}:{name}", kind as char))
    }

    /// Rows by id, in the order asked; `None` for those gone meanwhile.
    async fn rows(&self, ids: &[String]) -> Result<Vec<Option<Delivered>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.key(&format!("row:{id}")))
            .collect();
        let found: Vec<Option<String>> = self
            .store
            .run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            .await?;
        found
            .into_iter()
            .map(|json| {
                json.map(|j| Delivered::decode(&self.sealer, j.as_bytes()))
                    .transpose()
            })
            .collect()
    }

    /// Up to `count` ids of the sorted set `set` by delivered time, newest first from `max`
    /// (inclusive) or oldest first up to `max` (exclusive), with their times.
    async fn range(
        &self,
        set: &str,
        newest_first: bool,
        max: Option<u64>,
        count: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let set = set.to_string();
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(set);
        if newest_first {
            cmd.arg(max.map_or("+inf".to_string(), |m| m.to_string()))
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV");
        } else {
            cmd.arg("-inf")
                .arg(max.map_or("+inf".to_string(), |m| format!("({m}")))
                .arg("BYSCORE");
        }
        cmd.arg("LIMIT").arg(0).arg(count).arg("WITHSCORES");
        let found: Vec<(String, f64)> = self
            .store
            .run(|mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        Ok(found.into_iter().map(|(id, ms)| (id, ms as u64)).collect())
    }

    /// Removes the rows of `ids` with everything that names them (an id whose row is gone,
    /// from the time-ordered sets); the bytes freed.
    async fn remove_rows(
        &self,
        ids: &[String],
        rows: &[Option<Delivered>],
    ) -> Result<u64, StoreError> {
        let mut script = self.remove.prepare_invoke();
        script
            .key(self.key("all"))
            .key(self.key("p"))
            .key(self.key("bytes"));
        for (id, row) in ids.iter().zip(rows) {
            let names = row.as_ref().map(Delivered::index_keys).unwrap_or_default();
            script.key(self.key(&format!("row:{id}")));
            script.key(self.key(&format!("payload:{id}")));
            for (kind, name) in &names {
                script.key(self.index_key(*kind, name));
            }
            script.arg(id).arg(names.len());
        }
        self.store
            .run(|mut c| async move { script.invoke_async(&mut c).await })
            .await
    }
}

impl RedisHistory {
    /// A row and its payload sealed otherwise than the store seals now, sealed anew.
    fn stale_parts(
        &self,
        id: &str,
        row: Option<String>,
        payload: Option<Vec<u8>>,
    ) -> Result<Vec<Replacement>, StoreError> {
        let sealer = &self.sealer;
        let mut replacements = Vec::new();
        if let Some(json) = row {
            let parsed = Delivered::parse(json.as_bytes())?;
            if !parsed.record.is_sealed_as(sealer) {
                replacements.push(Replacement {
                    place: Place::String(self.key(&format!("row:{id}"))),
                    new: parsed.opened(sealer)?.encode(sealer),
                    read: json.into_bytes(),
                });
            }
        }
        if let Some(payload) = payload {
            if let Some(new) = reseal_body(sealer, id, &payload)? {
                replacements.push(Replacement {
                    place: Place::String(self.key(&format!("payload:{id}"))),
                    read: payload,
                    new,
                });
            }
        }
        Ok(replacements)
    }
}

#[async_trait]
impl HistoryStore for RedisHistory {
    /// `ZSCAN` of `all` from `after` (its cursor): every row present for the whole pass is
    /// met at least once.
    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        let cursor: u64 = match after {
            None => 0,
            Some(at) => at
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("a reseal cursor {at:?}")))?,
        };
        let (next, ids) = self.store.zscan(self.key("all"), cursor, limit).await?;
        let mut page = ResealPage {
            scanned: ids.len() as u64,
            next: (next != 0).then(|| next.to_string()),
            ..ResealPage::default()
        };
        if ids.is_empty() {
            return Ok(page);
        }
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| {
                [
                    self.key(&format!("row:{id}")),
                    self.key(&format!("payload:{id}")),
                ]
            })
            .collect();
        let found: Vec<Option<Vec<u8>>> = self
            .store
            .run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            .await?;
        let mut found = found.into_iter();
        let mut grown = 0;
        for id in &ids {
            let row = found
                .next()
                .flatten()
                .map(|r| String::from_utf8_lossy(&r).into_owned());
            let payload = found.next().flatten();
            match self.stale_parts(id, row, payload) {
                Ok(replacements) if replacements.is_empty() => {}
                Ok(replacements) => {
                    let (replaced, by) = self.replacer.replace(&self.store, &replacements).await?;
                    page.resealed += u64::from(replaced > 0);
                    grown += by;
                }
                Err(e) => {
                    tracing::error!(delivery_id = %id, error = %e, "a history row does not open; it cannot be sealed anew");
                    page.unreadable += 1;
                }
            }
        }
        if grown != 0 {
            let bytes = self.key("bytes");
            self.store
                .run(|mut c| async move {
                    redis::cmd("INCRBY")
                        .arg(bytes)
                        .arg(grown)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await?;
        }
        Ok(page)
    }

    async fn keep(&self, rows: Vec<(Delivered, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut script = self.keep.prepare_invoke();
        script
            .key(self.key("all"))
            .key(self.key("p"))
            .key(self.key("bytes"));
        for (row, payload) in &rows {
            let id = &row.record.id;
            let names = row.index_keys();
            script.key(self.key(&format!("row:{id}")));
            script.key(self.key(&format!("payload:{id}")));
            for (kind, name) in &names {
                script.key(self.index_key(*kind, name));
            }
            let payload = payload.as_ref().map(|p| seal_body(&self.sealer, id, p));
            script
                .arg(id)
                .arg(row.delivered_ms)
                .arg(row.encode(&self.sealer))
                .arg(payload.unwrap_or_default())
                .arg(names.len());
        }
        self.store
            .run(|mut c| async move { script.invoke_async::<i64>(&mut c).await })
            .await
            .map(|_| ())
    }

    async fn get(&self, id: &str) -> Result<Option<(Delivered, Option<Vec<u8>>)>, StoreError> {
        let keys = [
            self.key(&format!("row:{id}")),
            self.key(&format!("payload:{id}")),
        ];
        let (row, payload): (Option<String>, Option<Vec<u8>>) = self
            .store
            .run(|mut c| async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await })
            .await?;
        row.map(|json| {
            let row = Delivered::decode(&self.sealer, json.as_bytes())?;
            let payload = payload
                .map(|p| open_body(&self.sealer, id, &p))
                .transpose()?;
            Ok((row, payload))
        })
        .transpose()
    }

    async fn list(&self, query: &HistoryQuery) -> Result<Vec<Delivered>, StoreError> {
        let set = match query.index() {
            Some((kind, name)) => self.index_key(kind, name),
            None => self.key("all"),
        };
        let mut found = Vec::new();
        let mut from: Option<Cursor> = query.after.clone();
        loop {
            let page = self
                .range(&set, true, from.as_ref().map(|c| c.delivered_ms), BATCH)
                .await?;
            let full = page.len() == BATCH;
            // Those at the cursor's millisecond that were already passed are skipped.
            let ids: Vec<String> = page
                .iter()
                .filter(|(id, ms)| {
                    from.as_ref().is_none_or(|c| {
                        *ms < c.delivered_ms || (*ms == c.delivered_ms && *id < c.id)
                    })
                })
                .map(|(id, _)| id.clone())
                .collect();
            let Some((last_id, last_ms)) = page.last().cloned() else {
                break;
            };
            for row in self.rows(&ids).await?.into_iter().flatten() {
                if query.matches(&row) {
                    found.push(row);
                    if found.len() == query.limit {
                        return Ok(found);
                    }
                }
            }
            let next = Cursor {
                delivered_ms: last_ms,
                id: last_id,
            };
            if !full || from.as_ref() == Some(&next) {
                break;
            }
            from = Some(next);
        }
        Ok(found)
    }

    async fn sweep(&self, sweep: Sweep) -> Result<usize, StoreError> {
        let mut swept = 0;
        loop {
            let bytes: Option<u64> = {
                let key = self.key("bytes");
                self.store
                    .run(
                        |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await },
                    )
                    .await?
            };
            let bytes = bytes.unwrap_or(0);
            let over = bytes > sweep.max_bytes;
            // Over the bound: about as many of the oldest rows as hold the excess.
            let count = match over {
                false => BATCH,
                true => {
                    let all = self.key("all");
                    let rows: u64 = self
                        .store
                        .run(|mut c| async move {
                            redis::cmd("ZCARD").arg(all).query_async(&mut c).await
                        })
                        .await?;
                    let average = (bytes / rows.max(1)).max(1);
                    (((bytes - sweep.max_bytes) / average + 1) as usize).min(BATCH)
                }
            };
            let max = (!over).then_some(sweep.before_ms);
            let old = self.range(&self.key("all"), false, max, count).await?;
            if old.is_empty() {
                break;
            }
            let ids: Vec<String> = old.into_iter().map(|(id, _)| id).collect();
            let rows = self.rows(&ids).await?;
            self.remove_rows(&ids, &rows).await?;
            swept += rows.iter().flatten().count();
        }
        loop {
            let old = self
                .range(&self.key("p"), false, Some(sweep.payloads_before_ms), BATCH)
                .await?;
            if old.is_empty() {
                break;
            }
            let mut script = self.drop_payloads.prepare_invoke();
            script.key(self.key("p")).key(self.key("bytes"));
            for (id, _) in &old {
                script.key(self.key(&format!("payload:{id}")));
                script.arg(id);
            }
            self.store
                .run(|mut c| async move { script.invoke_async::<i64>(&mut c).await })
                .await?;
        }
        Ok(swept)
    }
}
