//! Subscriptions shared by replicas: one hash of JSON documents by id (`all`), a version
//! counter bumped by every write in the same script (so a replica that sees the version
//! change reloads and finds the change), and per subscription a hash of delivery counts,
//! all under the hash tag `{subscriptions}`; and when each tenant's portal tokens were
//! last revoked (`portal_revoked`, a hash by tenant).

use std::sync::Arc;

use async_trait::async_trait;
use redis::Script;

use super::RedisStore;
use crate::store::seal::Sealer;
use crate::store::subscriptions::{
    DeliveryNote, Subscription, SubscriptionStats, SubscriptionStore,
};
use crate::store::StoreError;

/// KEYS: all, version. ARGV: id, document. Answers the new version.
const PUT: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('INCR', KEYS[2])
";

/// KEYS: all, version, stats. ARGV: id. Answers whether it existed.
const DELETE: &str = r"
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('INCR', KEYS[2])
return existed
";

/// KEYS: all, version. Answers {version, id, document, id, document...}, read at one
/// instant.
const LOAD: &str = r"
local answer = {redis.call('GET', KEYS[2]) or '0'}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do answer[#answer + 1] = v end
return answer
";

/// KEYS: all, version. ARGV: id, the document as read, the document resealed. Answers
/// whether it was written (not if it changed meanwhile).
const RESEAL: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
";

/// The sealer's name for the table (the associated data binds each document to it).
const SEALED: &str = "subscriptions";

/// KEYS: stats. ARGV: outcome (delivered, failed, dead), at, error.
const NOTE: &str = r"
if ARGV[1] == 'delivered' then
  redis.call('HINCRBY', KEYS[1], 'delivered', 1)
  redis.call('HSET', KEYS[1], 'last_success_at', ARGV[2])
  return 1
end
redis.call('HINCRBY', KEYS[1], 'failed_attempts', 1)
if ARGV[1] == 'dead' then redis.call('HINCRBY', KEYS[1], 'dead', 1) end
redis.call('HSET', KEYS[1], 'last_error_at', ARGV[2], 'last_error', ARGV[3])
return 1
";

pub struct RedisSubscriptions {
    store: Arc<RedisStore>,
    /// Each document is sealed whole (`store.encryption`), bound to its id.
    sealer: Arc<Sealer>,
    reseal: Script,
    put: Script,
    delete: Script,
    load: Script,
    note: Script,
}

impl RedisSubscriptions {
    pub fn new(store: Arc<RedisStore>, sealer: Arc<Sealer>) -> Self {
        RedisSubscriptions {
            store,
            sealer,
            reseal: Script::new(RESEAL),
            put: Script::new(PUT),
            delete: Script::new(DELETE),
            load: Script::new(LOAD),
            note: Script::new(NOTE),
        }
    }

    fn key(&self, name: &str) -> String {
        self.store.key(&format!("{{subscriptions}}:{name}"))
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("subscription: {e}"))
}

impl RedisSubscriptions {
    /// Every stored document with its id, as stored, and the version they were read at.
    async fn rows(&self) -> Result<(u64, Vec<(String, Vec<u8>)>), StoreError> {
        let (all, version) = (self.key("all"), self.key("version"));
        let rows: Vec<Vec<u8>> = self
            .store
            .run(|mut c| async move { self.load.key(all).key(version).invoke_async(&mut c).await })
            .await?;
        let mut rows = rows.into_iter();
        let version = String::from_utf8_lossy(&rows.next().unwrap_or_default())
            .parse::<u64>()
            .map_err(corrupt)?;
        let mut pairs = Vec::new();
        while let (Some(id), Some(doc)) = (rows.next(), rows.next()) {
            pairs.push((String::from_utf8(id).map_err(corrupt)?, doc));
        }
        Ok((version, pairs))
    }

    fn open(&self, id: &str, doc: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer
            .open(SEALED, id, doc)
            .map(|plain| plain.into_owned())
            .map_err(|e| StoreError::Sealed(format!("subscription {id}: {e}")))
    }
}

#[async_trait]
impl SubscriptionStore for RedisSubscriptions {
    async fn load(&self) -> Result<(u64, Vec<Subscription>), StoreError> {
        let (version, rows) = self.rows().await?;
        let all = rows
            .iter()
            .map(|(id, doc)| serde_json::from_slice(&self.open(id, doc)?).map_err(corrupt))
            .collect::<Result<_, _>>()?;
        Ok((version, all))
    }

    async fn version(&self) -> Result<u64, StoreError> {
        let version = self.key("version");
        let found: Option<u64> = self
            .store
            .run(|mut c| async move { redis::cmd("GET").arg(version).query_async(&mut c).await })
            .await?;
        Ok(found.unwrap_or(0))
    }

    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let (all, version) = (self.key("all"), self.key("version"));
        let doc = serde_json::to_vec(subscription).expect("a subscription always serializes");
        let id = subscription.id.as_str();
        let doc = self.sealer.seal(SEALED, id, &doc);
        self.store
            .run(|mut c| async move {
                self.put
                    .key(all)
                    .key(version)
                    .arg(id)
                    .arg(doc)
                    .invoke_async::<u64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let (all, version) = (self.key("all"), self.key("version"));
        let stats = self.key(&format!("stats:{id}"));
        let existed: i64 = self
            .store
            .run(|mut c| async move {
                self.delete
                    .key(all)
                    .key(version)
                    .key(stats)
                    .arg(id)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(existed == 1)
    }

    async fn note(&self, id: &str, note: &DeliveryNote, at_ms: u64) -> Result<(), StoreError> {
        let stats = self.key(&format!("stats:{id}"));
        let outcome = match note {
            DeliveryNote::Delivered => "delivered",
            DeliveryNote::Failed { .. } => "failed",
            DeliveryNote::Dead { .. } => "dead",
        };
        let error = note.error().unwrap_or_default();
        self.store
            .run(|mut c| async move {
                self.note
                    .key(stats)
                    .arg(outcome)
                    .arg(at_ms)
                    .arg(error)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn stats(&self, id: &str) -> Result<SubscriptionStats, StoreError> {
        let stats = self.key(&format!("stats:{id}"));
        let fields: std::collections::HashMap<String, String> = self
            .store
            .run(|mut c| async move { redis::cmd("HGETALL").arg(stats).query_async(&mut c).await })
            .await?;
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
        Ok(SubscriptionStats {
            delivered: number("delivered").unwrap_or(0),
            failed_attempts: number("failed_attempts").unwrap_or(0),
            dead: number("dead").unwrap_or(0),
            last_success_at: number("last_success_at"),
            last_error_at: number("last_error_at"),
            last_error: fields.get("last_error").cloned(),
        })
    }

    async fn revoke_portal_tokens(&self, tenant: &str, at_ms: u64) -> Result<(), StoreError> {
        let revoked = self.key("portal_revoked");
        self.store
            .run(|mut c| async move {
                redis::cmd("HSET")
                    .arg(revoked)
                    .arg(tenant)
                    .arg(at_ms)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn reseal(&self) -> Result<usize, StoreError> {
        let (_, rows) = self.rows().await?;
        let mut rewritten = 0;
        for (id, doc) in rows.iter().filter(|(_, doc)| !self.sealer.is_current(doc)) {
            let resealed = self.sealer.seal(SEALED, id, &self.open(id, doc)?);
            let (all, version) = (self.key("all"), self.key("version"));
            let written: i64 = self
                .store
                .run(|mut c| async move {
                    self.reseal
                        .key(all)
                        .key(version)
                        .arg(id)
                        .arg(doc)
                        .arg(resealed)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            rewritten += written as usize;
        }
        Ok(rewritten)
    }

    async fn portal_tokens_revoked_at(&self, tenant: &str) -> Result<Option<u64>, StoreError> {
        let revoked = self.key("portal_revoked");
        let at: Option<String> = self
            .store
            .run(|mut c| async move {
                redis::cmd("HGET")
                    .arg(revoked)
                    .arg(tenant)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        at.map(|at| at.parse::<u64>().map_err(corrupt)).transpose()
    }
}
