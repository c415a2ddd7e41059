//! Receivers' limits shared by every replica: per receiver, a sorted set of the slots in
//! use (scored by when each lapses, so a killed replica's slots come back after their
//! lease) and a GCRA arrival time, both under one hash tag and taken by one script on
//! Redis' clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{unique_token, RedisStore};
use crate::store::pacing::{Limits, PacingStore, Slot, Taken, BUSY};
use crate::store::StoreError;

/// KEYS: slots, rate. ARGV: concurrency, slot token, lease (µs), interval (µs, 0 for no
/// rate), capacity, wanted. Adds slots `<token>:1` to `<token>:<n>`; answers {n, wait µs
/// for the rest, or -1 when the slots are what is lacking}.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local wanted = math.min(tonumber(ARGV[6]), free)
local interval = tonumber(ARGV[4])
local granted, wait = 0, -1
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
while granted < wanted do
  if interval > 0 then
    local allow_at = tat + interval - interval * tonumber(ARGV[5])
    if allow_at > now then
      wait = allow_at - now
      break
    end
    tat = tat + interval
  end
  granted = granted + 1
end
if granted == 0 then
  return {0, wait}
end
if interval > 0 then
  redis.call('SET', KEYS[2], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
local lease = tonumber(ARGV[3])
for i = 1, granted do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[2] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + 1)
return {granted, wait}
";

pub struct RedisPacing {
    store: Arc<RedisStore>,
    take: Script,
}

impl RedisPacing {
    pub fn new(store: Arc<RedisStore>) -> Self {
        RedisPacing {
            store,
            take: Script::new(TAKE),
        }
    }

    fn keys(&self, receiver: &str) -> (String, String) {
        (
            self.store.key(&format!("pacing:{{{receiver}}}:slots")),
            self.store.key(&format!("pacing:{{{receiver}}}:rate")),
        )
    }
}

#[async_trait]
impl PacingStore for RedisPacing {
    async fn take(
        &self,
        receiver: &str,
        limits: &Limits,
        wanted: u32,
    ) -> Result<Taken, StoreError> {
        let (slots, rate) = self.keys(receiver);
        let token = unique_token();
        let sent = token.as_str();
        let (interval, capacity) = limits.rate.map_or((0, 1), |r| {
            ((r.per_request.as_micros() as u64).max(1), r.capacity)
        });
        let (granted, wait): (u32, i64) = self
            .store
            .run(|mut c| async move {
                self.take
                    .key(slots)
                    .key(rate)
                    .arg(limits.concurrency)
                    .arg(sent)
                    .arg(limits.lease.as_micros() as u64)
                    .arg(interval)
                    .arg(capacity)
                    .arg(wanted)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(Taken {
            slots: (1..=granted)
                .map(|i| Slot(format!("{token}:{i}")))
                .collect(),
            wait: u64::try_from(wait).map_or(BUSY, Duration::from_micros),
        })
    }

    async fn give_back(&self, receiver: &str, slot: Slot) -> Result<(), StoreError> {
        let (slots, _) = self.keys(receiver);
        let member = slot.0;
        self.store
            .run(|mut c| async move {
                redis::cmd("ZREM")
                    .arg(slots)
                    .arg(member)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }
}
