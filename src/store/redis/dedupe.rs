//! Dedupe in Redis: one key per delivery id, `inflight` (with the claim's lease as its
//! expiry) or `done:<status>` (with the dedupe window as its expiry). Claim and release
//! are Lua scripts, so two replicas can never both claim an id.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::RedisStore;
use crate::store::{Claim, DedupeStore, StoreError};

const CLAIM: &str = r"
local seen = redis.call('GET', KEYS[1])
if seen then return seen end
redis.call('SET', KEYS[1], 'inflight', 'PX', ARGV[1])
return 'claimed'
";

/// Drops a claim, never a done id.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == 'inflight' then redis.call('DEL', KEYS[1]) end
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
}

fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

#[async_trait]
impl DedupeStore for RedisDedupe {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let key = self.key(key);
        let seen: String = self
            .store
            .run(|mut c| async move {
                self.claim
                    .key(key)
                    .arg(millis(lease))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
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

    async fn complete(&self, key: &str, status: u16, ttl: Duration) -> Result<(), StoreError> {
        let key = self.key(key);
        self.store
            .run(|mut c| async move {
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
            .run(|mut c| async move { self.release.key(key).invoke_async::<()>(&mut c).await })
            .await
    }
}
