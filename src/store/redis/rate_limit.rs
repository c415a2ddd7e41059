//! GCRA in Redis: one key per limited key holding its theoretical arrival time (µs, on
//! Redis' own clock, so replicas' clocks do not matter), updated by one script. The same
//! answers as the embedded limiter: allowed with what is left, or the wait until allowed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::RedisStore;
use crate::store::{Allowance, Decision, RateKey, RateLimiter, StoreError};

const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((tolerance - (new_tat - now)) / interval), new_tat - now}
";

pub struct RedisRateLimiter {
    store: Arc<RedisStore>,
    script: Script,
    /// `ratelimit:<route>:`, before each limited key.
    prefix: String,
    allowance: Allowance,
}

impl RedisRateLimiter {
    pub fn new(store: Arc<RedisStore>, route: &str, allowance: Allowance) -> Self {
        RedisRateLimiter {
            prefix: store.key(&format!("ratelimit:{route}:")),
            store,
            script: Script::new(GCRA),
            allowance,
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &RateKey) -> Result<Decision, StoreError> {
        let key = format!("{}{}", self.prefix, key.hex());
        let interval = (self.allowance.per_request.as_micros() as u64).max(1);
        let capacity = self.allowance.capacity;
        let (allowed, remaining, micros): (u8, u32, u64) = self
            .store
            .run(|mut c| async move {
                self.script
                    .key(key)
                    .arg(interval)
                    .arg(capacity)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let after = Duration::from_micros(micros);
        Ok(if allowed == 1 {
            Decision::Allowed {
                remaining,
                reset: after,
            }
        } else {
            Decision::Wait(after)
        })
    }
}
