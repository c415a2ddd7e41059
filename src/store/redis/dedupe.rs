//! Dedupe in Redis: one key per delivery id, `inflight:<claim token>` (with the claim's
//! lease as its expiry) or `done:<status>` (with the dedupe window as its expiry). Claim
//! and release are Lua scripts, so two replicas can never both claim an id.
//!
//! A claim whose answer did not come in time (a stalled Redis) may still run once Redis
//! wakes, and would then hold the id in flight for its whole lease: the provider's
//! retries would get 409s for minutes. Such a claim is abandoned: a script that drops the
//! id only if this claim's token holds it, sent on the same connection so Redis runs it
//! after the claim.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{unique_token, RedisStore};
use crate::store::dedupe::{claim_each, complete_each};
use crate::store::{Claim, DedupeStore, StoreError};

/// ARGV: lease in ms, claim token. Claims every key or none (one request's id and its
/// signed content, on a single Redis; one key at a time on a cluster, whose slots differ).
const CLAIM: &str = r"
for _, key in ipairs(KEYS) do
  local seen = redis.call('GET', key)
  if seen then
    if string.sub(seen, 1, 8) == 'inflight' then return 'inflight' end
    return seen
  end
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, 'inflight:' .. ARGV[2], 'PX', ARGV[1])
end
return 'claimed'
";

/// Drops a claim, never a done id.
const RELEASE: &str = r"
local seen = redis.call('GET', KEYS[1])
if seen and string.sub(seen, 1, 8) == 'inflight' then redis.call('DEL', KEYS[1]) end
return 1
";

/// ARGV: claim token. Drops the claims only if they are this token's.
const ABANDON: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == 'inflight:' .. ARGV[1] then redis.call('DEL', key) end
end
return 1
";

pub struct RedisDedupe {
    store: Arc<RedisStore>,
    claim: Script,
    release: Script,
}

impl RedisDedupe {
    pub fn new(store: Arc<RedisStore>) -> Self {
        RedisDedupe {
            store,
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
        }
    }

    fn key(&self, id: &str) -> String {
        self.store.key(&format!("dedupe:{id}"))
    }

    /// Drops a claim whose answer never came, if it ran (see the module's comment). In
    /// the background: Redis runs it when it answers again, the request does not wait.
    fn abandon(&self, keys: Vec<String>, token: String) {
        let store = self.store.clone();
        tokio::spawn(async move {
            // EVAL, not EVALSHA: the script must run whenever Redis reads it, without a
            // second round trip for a script Redis has not cached. On the claim's connection.
            let first = keys[0].clone();
            let dropped = store
                .run_for(&first, |mut c| async move {
                    redis::cmd("EVAL")
                        .arg(ABANDON)
                        .arg(keys.len())
                        .arg(keys)
                        .arg(token)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            if let Err(e) = dropped {
                tracing::warn!(error = %e, "could not abandon a dedupe claim whose answer timed out; it lapses after its lease");
            }
        });
    }
}

fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl RedisDedupe {
    /// Claims every one of `keys` (whole Redis keys) in one script, on the first key's
    /// connection.
    async fn claim_keys(&self, keys: Vec<String>, lease: Duration) -> Result<Claim, StoreError> {
        let token = unique_token();
        let seen = self
            .store
            .run_for(&keys[0], |mut c| {
                let mut invocation = self.claim.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(millis(lease)).arg(&token);
                async move { invocation.invoke_async::<String>(&mut c).await }
            })
            .await;
        let seen = match seen {
            Ok(seen) => seen,
            Err(e) => {
                self.abandon(keys, token);
                return Err(e);
            }
        };
        Ok(match seen.as_str() {
            "claimed" => Claim::Claimed,
            "inflight" => Claim::InFlight,
            done => match done.strip_prefix("done:").and_then(|s| s.parse().ok()) {
                Some(status) => Claim::Done { status },
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "unexpected dedupe value {done:?}"
                    )))
                }
            },
        })
    }
}

#[async_trait]
impl DedupeStore for RedisDedupe {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        self.claim_keys(vec![self.key(key)], lease).await
    }

    async fn complete(&self, key: &str, status: u16, ttl: Duration) -> Result<(), StoreError> {
        let key = self.key(key);
        self.store
            .run_for(&key.clone(), |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(format!("done:{status}"))
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        self.store
            .run_for(&key.clone(), |mut c| async move {
                self.release.key(key).invoke_async::<()>(&mut c).await
            })
            .await
    }

    /// One round trip on a single Redis; on a cluster the keys' slots differ, so one key
    /// at a time.
    async fn claim_all(&self, keys: &[String], lease: Duration) -> Result<Claim, StoreError> {
        if self.store.is_cluster() || keys.is_empty() {
            return claim_each(self, keys, lease).await;
        }
        self.claim_keys(keys.iter().map(|k| self.key(k)).collect(), lease)
            .await
    }

    /// One pipeline on a single Redis; one key at a time on a cluster.
    async fn complete_all(
        &self,
        keys: &[String],
        status: u16,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if self.store.is_cluster() || keys.is_empty() {
            return complete_each(self, keys, status, ttl).await;
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let done = format!("done:{status}");
        let mut pipeline = redis::pipe();
        for key in &keys {
            pipeline
                .cmd("SET")
                .arg(key)
                .arg(&done)
                .arg("PX")
                .arg(millis(ttl))
                .ignore();
        }
        self.store
            .run_for(&keys[0], |mut c| async move {
                pipeline.query_async::<()>(&mut c).await
            })
            .await
    }
}
