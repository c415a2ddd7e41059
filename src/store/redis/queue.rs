//! The outbound queue in Redis, shared by replicas. Per message a hash (`m:<id>`: the
//! record's fixed part, state, due time, attempts this round, body) and a list of its
//! attempts (`a:<id>`); a sorted set `due` of pending ids by due time, and `all` of every
//! id by accept time; per endpoint, `w:<endpoint>`, its pending ids by accept time (the
//! oldest waiting message), and in the hash `counts` its messages per bucket
//! (`<endpoint>\t<bucket>`), kept by the scripts that move messages. The queue is split
//! into partitions, each under its own hash tag (`{outbound:<n>}`): every script touches one
//! partition, so it stays atomic on a Redis Cluster, and the partitions spread over its
//! slots.
//!
//! A claim moves a message's due time to the end of its lease; only the worker whose
//! claim is still current (the stored due time equals its lease end) may record the
//! attempt. Another instance picks the message up once a lease lapses (a crashed worker).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

mod depth;
mod reseal;

use super::queue_scripts::Scripts;
use super::replace::Replacer;
use super::{stable_hash, RedisStore};
use crate::store::queue::{
    open_body, seal_body, Attempt, Bucket, DeliveryFilter, Depth, EndpointState, Enqueued,
    Idempotency, Next, Queue, Record, State,
};
use crate::store::seal::{ResealPage, Sealer};
use crate::store::StoreError;

/// Partitions of the queue, each under its own hash tag: on a Redis Cluster they spread
/// over the slots (and so the nodes). Fixed, so that a message's partition never changes.
const PARTITIONS: usize = 16;

/// One partition: every key of it starts with `base` (`<key_prefix>{outbound:<n>}:`), so
/// each script stays in one slot.
struct Partition {
    base: String,
}

impl Partition {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn message(&self, id: &str) -> String {
        self.key(&format!("m:{id}"))
    }

    fn attempts(&self, id: &str) -> String {
        self.key(&format!("a:{id}"))
    }

    /// The keys of the scripts that move or remove one message: due, all, the message,
    /// its attempts, counts.
    fn message_keys(&self, id: &str) -> [String; 5] {
        [
            self.key("due"),
            self.key("all"),
            self.message(id),
            self.attempts(id),
            self.key("counts"),
        ]
    }
}

pub struct RedisQueue {
    store: Arc<RedisStore>,
    /// [`PARTITIONS`] partitions, then the single-slot layout of earlier versions
    /// (`{outbound}`), which takes no new messages but is claimed from, listed and replayed
    /// like the others until it is empty: an upgrade needs no migration and loses nothing.
    partitions: Vec<Partition>,
    /// Endpoint states (one hash, where earlier versions kept it).
    endpoints: String,
    /// Which partition each message this instance holds a claim on came from, so its
    /// outcome goes back there. An entry lives from the claim to its outcome or postponement.
    claimed: Mutex<HashMap<String, usize>>,
    /// Which partition a claim starts with, turned by one each claim.
    claim_turn: AtomicUsize,
    scripts: Scripts,
    replacer: Replacer,
    /// Seals bodies, inline secrets and answers (`store.encryption`).
    sealer: Arc<Sealer>,
}

/// A message as the scripts return it: fixed part, state, due, round, attempts (and the
/// body, from claims).
type Row = (String, String, String, String, Vec<String>);

/// A claimed message as the claim script returns it: fixed part, state, round, body,
/// attempts.
type ClaimedRow = (String, String, String, Vec<u8>, Vec<String>);

/// A stored field that does not read back as its type.
fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Pending => "pending",
        State::Dead => "dead",
    }
}

impl RedisQueue {
    pub fn new(store: Arc<RedisStore>, sealer: Arc<Sealer>) -> Self {
        let mut partitions: Vec<Partition> = (0..PARTITIONS)
            .map(|n| Partition {
                base: store.key(&format!("{{outbound:{n}}}:")),
            })
            .collect();
        let legacy = store.key("{outbound}:");
        let endpoints = format!("{legacy}endpoints");
        partitions.push(Partition { base: legacy });
        RedisQueue {
            store,
            partitions,
            endpoints,
            claimed: Mutex::default(),
            claim_turn: AtomicUsize::new(0),
            scripts: Scripts::new(),
            replacer: Replacer::new(),
            sealer,
        }
    }

    /// A new message's partition: by its endpoint, its per-request destination, or its
    /// event's tenant, which is also its idempotency keys' scope, so the key and the
    /// messages (all of one event's) share a slot.
    fn partition_for(record: &Record) -> usize {
        match (&record.event, &record.target) {
            (Some(event), _) => Self::event_partition(event.tenant.as_deref()),
            (None, Some(target)) => Self::scope_partition(&target.url),
            (None, None) => Self::scope_partition(&record.endpoint),
        }
    }

    fn scope_partition(scope: &str) -> usize {
        (stable_hash(scope.as_bytes()) % PARTITIONS as u64) as usize
    }

    /// Where a tenant's events go (the tenant-less ones too).
    fn event_partition(tenant: Option<&str>) -> usize {
        Self::scope_partition(&format!("events\n{}", tenant.unwrap_or("")))
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds a record from its stored parts, opened.
    fn record(
        &self,
        meta: &str,
        state: &str,
        due: &str,
        round: &str,
        attempts: &[String],
    ) -> Result<Record, StoreError> {
        let mut record: Record = serde_json::from_str(meta).map_err(|e| corrupt("record", e))?;
        record.state = match state {
            "pending" => State::Pending,
            "dead" => State::Dead,
            other => return Err(corrupt("state", format_args!("{other:?}"))),
        };
        record.due_ms = due.parse().map_err(|e| corrupt("due time", e))?;
        record.round_attempts = round.parse().map_err(|e| corrupt("attempt count", e))?;
        record.attempts = attempts
            .iter()
            .map(|a| serde_json::from_str(a))
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt("attempt", e))?;
        record.opened(&self.sealer)
    }

    fn rows(&self, rows: Vec<Row>) -> Result<Vec<Record>, StoreError> {
        rows.iter()
            .map(|(meta, state, due, round, attempts)| {
                self.record(meta, state, due, round, attempts)
            })
            .collect()
    }

    /// The records of `ids` in one partition (without bodies).
    async fn read(&self, partition: &Partition, ids: &[String]) -> Result<Vec<Record>, StoreError> {
        let rows: Vec<Row> = self
            .store
            .run(|mut c| async move {
                let mut call = self.scripts.read.prepare_invoke();
                call.key(partition.key("due")).arg(&partition.base);
                for id in ids {
                    call.arg(id);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        self.rows(rows)
    }

    /// Every message of one partition, in accept order (without bodies).
    async fn all(&self, partition: &Partition) -> Result<Vec<Record>, StoreError> {
        let all = partition.key("all");
        let ids: Vec<String> = self
            .store
            .run(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(all)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            records.extend(self.read(partition, chunk).await?);
        }
        Ok(records)
    }

    /// The partition that holds message `id`, looked for in each (admin calls by id).
    async fn find(&self, id: &str) -> Result<Option<(usize, Record)>, StoreError> {
        let ids = [id.to_string()];
        for (index, partition) in self.partitions.iter().enumerate() {
            if let Some(record) = self.read(partition, &ids).await?.pop() {
                return Ok(Some((index, record)));
            }
        }
        Ok(None)
    }

    async fn claim_in(
        &self,
        partition: &Partition,
        now_ms: u64,
        lease_end: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, StoreError> {
        let rows: Vec<ClaimedRow> = self
            .store
            .run(|mut c| async move {
                self.scripts
                    .claim
                    .key(partition.key("due"))
                    .arg(now_ms)
                    .arg(lease_end)
                    .arg(limit)
                    .arg(&partition.base)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for (meta, state, round, body, attempts) in rows {
            let due = lease_end.to_string();
            let opened = self
                .record(&meta, &state, &due, &round, &attempts)
                .and_then(|r| Ok((open_body(&self.sealer, &r.id, &body)?, r)));
            match opened {
                Ok((body, record)) => claimed.push((record, body)),
                // Claimed again at its lease's end, counted and logged each time, until its
                // key is given again: never delivered half-read, never skipped silently.
                Err(e) => tracing::error!(error = %e, "a stored message does not open; it waits"),
            }
        }
        Ok(claimed)
    }

    async fn purge_in(
        &self,
        partition: &Partition,
        filter: &DeliveryFilter,
        state: State,
    ) -> Result<usize, StoreError> {
        let mut purged = 0;
        for record in self.all(partition).await? {
            if !filter.matches(&record) || record.state != state {
                continue;
            }
            let keys = partition.message_keys(&record.id);
            let done: u8 = self
                .store
                .run(|mut c| async move {
                    let mut call = self.scripts.purge.prepare_invoke();
                    for key in &keys {
                        call.key(key);
                    }
                    call.arg(state_name(state))
                        .arg(&record.id)
                        .arg(&partition.base)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            purged += usize::from(done);
        }
        Ok(purged)
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue_many(
        &self,
        records: Vec<Record>,
        body: Bytes,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError> {
        let Some(first) = records.first() else {
            return Ok(Enqueued::New); // nothing to store, no key to hold
        };
        let partition = &self.partitions[Self::partition_for(first)];
        let (idempotency_key, expires, receipt) = match &idempotency {
            Some(i) => (
                partition.key(&format!("idem:{}", i.key)),
                i.expires_ms,
                i.receipt.as_str(),
            ),
            None => (partition.key("idem:"), 0, ""),
        };
        let mut keys = vec![
            partition.key("due"),
            partition.key("all"),
            idempotency_key,
            partition.key("counts"),
        ];
        let mut args: Vec<Vec<u8>> =
            vec![expires.to_string().into(), receipt.into(), body.to_vec()];
        let sealed: Vec<Record>;
        let records = if self.sealer.enabled() {
            sealed = records.iter().map(|r| r.sealed(&self.sealer)).collect();
            &sealed
        } else {
            &records
        };
        for record in records {
            keys.push(partition.message(&record.id));
            keys.push(partition.attempts(&record.id));
            keys.push(partition.key(&format!("w:{}", record.endpoint)));
            let meta = serde_json::to_string(&Record {
                attempts: Vec::new(),
                ..record.clone()
            })
            .expect("a record always serializes");
            args.extend([
                record.id.clone().into(),
                meta.into(),
                state_name(record.state).into(),
                record.due_ms.to_string().into(),
                record.round_attempts.to_string().into(),
                record.created_ms.to_string().into(),
                record.endpoint.clone().into(),
                record.bucket().as_str().into(),
                record
                    .order
                    .as_ref()
                    .map_or_else(String::new, |o| partition.key(&format!("o:{}", o.key)))
                    .into(),
                record.attempts.len().to_string().into(),
            ]);
            args.extend(
                record
                    .attempts
                    .iter()
                    .map(|a| serde_json::to_vec(a).expect("an attempt always serializes")),
            );
            // Sealed, each message's own body; in clear, the one shared by all (ARGV[3]).
            args.push(match self.sealer.enabled() {
                true => seal_body(&self.sealer, &record.id, &body),
                false => Vec::new(),
            });
        }
        let earlier: String = self
            .store
            .run(|mut c| async move {
                let mut call = self.scripts.enqueue.prepare_invoke();
                for key in &keys {
                    call.key(key);
                }
                for arg in &args {
                    call.arg(arg.as_slice());
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(if earlier.is_empty() {
            Enqueued::New
        } else {
            Enqueued::Duplicate(earlier)
        })
    }

    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, StoreError> {
        let lease_end = now_ms + lease_ms;
        // Which partitions have due work: asked of all at once (one round trip on the
        // multiplexed connection), so a claim runs scripts only where there is work.
        let due = self.partitions.iter().map(|partition| {
            let key = partition.key("due");
            self.store.run(move |mut c| async move {
                redis::cmd("ZCOUNT")
                    .arg(key)
                    .arg("-inf")
                    .arg(now_ms)
                    .query_async::<usize>(&mut c)
                    .await
            })
        });
        let due = futures_util::future::try_join_all(due).await?;
        let turn = self.claim_turn.fetch_add(1, Ordering::Relaxed);
        let mut claimed = Vec::new();
        for i in 0..self.partitions.len() {
            let index = (turn + i) % self.partitions.len();
            if due[index] == 0 {
                continue;
            }
            let partition = &self.partitions[index];
            let taken = self
                .claim_in(partition, now_ms, lease_end, limit - claimed.len())
                .await?;
            let mut claims = self.claims();
            for (record, _) in &taken {
                claims.insert(record.id.clone(), index);
            }
            drop(claims);
            claimed.extend(taken);
            if claimed.len() == limit {
                break;
            }
        }
        Ok(claimed)
    }

    async fn finish_attempt(
        &self,
        claimed: &Record,
        attempt: Attempt,
        next: Next,
    ) -> Result<bool, StoreError> {
        let index = self
            .claims()
            .remove(&claimed.id)
            .unwrap_or_else(|| Self::partition_for(claimed));
        let partition = &self.partitions[index];
        let (next, next_due) = match next {
            Next::Delivered => ("delivered", 0),
            Next::RetryAt(due) => ("retry", due),
            Next::Dead => ("dead", 0),
        };
        let mut attempt = attempt;
        if self.sealer.enabled() {
            attempt.seal_answer(&claimed.id, &|table, id, value| {
                Ok(self.sealer.seal_text(table, id, value))
            })?;
        }
        let attempt = serde_json::to_string(&attempt).expect("an attempt always serializes");
        let keys = partition.message_keys(&claimed.id);
        let done: u8 = self
            .store
            .run(|mut c| async move {
                let mut call = self.scripts.finish.prepare_invoke();
                for key in &keys {
                    call.key(key);
                }
                call.arg(claimed.due_ms)
                    .arg(attempt)
                    .arg(next)
                    .arg(next_due)
                    .arg(&claimed.id)
                    .arg(&partition.base)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(done == 1)
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.find(id).await?.map(|(_, record)| record))
    }

    async fn body(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((index, _)) = self.find(id).await? else {
            return Ok(None);
        };
        let message = self.partitions[index].message(id);
        let stored: Option<Vec<u8>> = self
            .store
            .run(|mut c| async move {
                redis::cmd("HGET")
                    .arg(message)
                    .arg("body")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        stored.map(|b| open_body(&self.sealer, id, &b)).transpose()
    }

    async fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        for partition in &self.partitions {
            records.extend(self.all(partition).await?.into_iter().filter(|r| {
                endpoint.is_none_or(|e| e == r.endpoint) && state.is_none_or(|s| s == r.state)
            }));
        }
        records.sort_by_key(|r| r.created_ms);
        Ok(records)
    }

    async fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let Some((index, _)) = self.find(id).await? else {
            return Ok(false);
        };
        let partition = &self.partitions[index];
        let (due, message) = (partition.key("due"), partition.message(id));
        let found: u8 = self
            .store
            .run(|mut c| async move {
                self.scripts
                    .retry_now
                    .key(due)
                    .key(message)
                    .key(partition.key("counts"))
                    .arg(now_ms)
                    .arg(id)
                    .arg(&partition.base)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(found == 1)
    }

    async fn purge(&self, filter: &DeliveryFilter, state: State) -> Result<usize, StoreError> {
        let mut purged = 0;
        for partition in &self.partitions {
            purged += self.purge_in(partition, filter, state).await?;
        }
        Ok(purged)
    }

    async fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError> {
        let claimed = self.claims().remove(id);
        let index = match claimed {
            Some(index) => index,
            None => match self.find(id).await? {
                Some((index, _)) => index,
                None => return Ok(()),
            },
        };
        let partition = &self.partitions[index];
        let (due, message) = (partition.key("due"), partition.message(id));
        self.store
            .run(|mut c| async move {
                self.scripts
                    .postpone
                    .key(due)
                    .key(message)
                    .arg(due_ms)
                    .arg(id)
                    .invoke_async::<u8>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        let firsts = self.partitions.iter().map(|partition| {
            let key = partition.key("due");
            self.store.run(move |mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES")
                    .query_async::<Vec<(String, u64)>>(&mut c)
                    .await
            })
        });
        let firsts = futures_util::future::try_join_all(firsts).await?;
        Ok(firsts.into_iter().flatten().map(|(_, due)| due).min())
    }

    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        self.reseal(after, limit).await
    }
    async fn depth(&self) -> Result<Vec<Depth>, StoreError> {
        let mut depths: Vec<Depth> = Vec::new();
        for partition in &self.partitions {
            for part in self.depth_in(partition).await? {
                match depths.iter_mut().find(|d| d.endpoint == part.endpoint) {
                    None => depths.push(part),
                    Some(depth) => {
                        for bucket in Bucket::ALL {
                            *depth.count_mut(bucket) += part.count(bucket);
                        }
                        depth.oldest_waiting_ms =
                            match (depth.oldest_waiting_ms, part.oldest_waiting_ms) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                    }
                }
            }
        }
        depths.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        Ok(depths)
    }

    async fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, StoreError> {
        let key = self.endpoints.clone();
        let states: Vec<(String, String)> = self
            .store
            .run(|mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
            .await?;
        states
            .into_iter()
            .map(|(name, json)| {
                serde_json::from_str(&json)
                    .map(|state| (name, state))
                    .map_err(|e| corrupt("endpoint state", e))
            })
            .collect()
    }

    async fn set_endpoint_state(
        &self,
        endpoint: &str,
        state: &EndpointState,
    ) -> Result<(), StoreError> {
        let key = self.endpoints.clone();
        let json = serde_json::to_string(state).expect("a state always serializes");
        self.store
            .run(|mut c| async move {
                redis::cmd("HSET")
                    .arg(key)
                    .arg(endpoint)
                    .arg(json)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }
}
