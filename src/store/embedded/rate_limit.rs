//! Rate limits in this process: governor's GCRA, one state per key in a concurrent map,
//! swept of idle keys, and capped: a flood of distinct keys cannot grow memory without
//! bound (each key is a fixed 16 bytes, [`RateKey`]).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

use crate::clock::now_ms;
use crate::store::{Allowance, Decision, RateKey, RateLimiter, StoreError};

type Limiter = governor::RateLimiter<
    RateKey,
    DashMapStateStore<RateKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// How often idle keys are dropped.
const EVICT_EVERY: Duration = Duration::from_secs(30);

/// At the cap, idle keys are swept at most this often before a request is refused.
const SWEEP_AT_CAP_EVERY_MS: u64 = 1000;

pub struct LocalRateLimiter {
    limiter: Arc<Limiter>,
    allowance: Allowance,
    max_keys: usize,
    /// When the cap last made a sweep (unix ms).
    last_sweep_ms: AtomicU64,
}

impl LocalRateLimiter {
    pub fn new(allowance: Allowance, max_keys: usize) -> Self {
        let quota = Quota::with_period(allowance.per_request)
            .expect("a rate's period is never zero")
            .allow_burst(NonZeroU32::new(allowance.capacity).expect("burst is at least 1"));
        let limiter = Arc::new(
            governor::RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
        );
        spawn_evictor(Arc::downgrade(&limiter));
        LocalRateLimiter {
            limiter,
            allowance,
            max_keys: max_keys.max(1),
            last_sweep_ms: AtomicU64::new(0),
        }
    }

    /// Whether the map holds its maximum of keys, after a sweep of the idle ones (at most
    /// one a second). governor cannot tell a new key from a known one, so at the cap every
    /// key is refused until keys fall idle: the route's `on_store_error` decides.
    fn full(&self) -> bool {
        if self.limiter.len() < self.max_keys {
            return false;
        }
        let now = now_ms();
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_AT_CAP_EVERY_MS
            && self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
        self.limiter.len() >= self.max_keys
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &RateKey) -> Result<Decision, StoreError> {
        if self.full() {
            return Err(StoreError::Full {
                capacity: self.max_keys,
            });
        }
        let Allowance {
            capacity,
            per_request,
        } = self.allowance;
        Ok(match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision::Allowed {
                    remaining,
                    reset: per_request * (capacity - remaining.min(capacity)),
                }
            }
            Err(not_until) => {
                Decision::Wait(not_until.wait_time_from(DefaultClock::default().now()))
            }
        })
    }
}

/// Drops keys whose allowance is full again, for as long as the limiter exists.
fn spawn_evictor(limiter: Weak<Limiter>) {
    let spawned = std::thread::Builder::new()
        .name("hookgate-ratelimit-evictor".into())
        .spawn(move || loop {
            std::thread::sleep(EVICT_EVERY);
            let Some(limiter) = limiter.upgrade() else {
                return;
            };
            limiter.retain_recent();
            limiter.shrink_to_fit();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "idle rate-limit keys will not be evicted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn new_keys_past_the_cap_are_refused_until_keys_fall_idle() {
        let limiter = LocalRateLimiter::new(
            Allowance {
                capacity: 1,
                per_request: Duration::from_millis(50),
            },
            3,
        );
        for i in 0..3u8 {
            assert!(limiter.check(&RateKey::of(&[i])).await.is_ok());
        }
        assert!(matches!(
            limiter.check(&RateKey::of(b"x")).await,
            Err(StoreError::Full { capacity: 3 })
        ));
        // Each allowance is whole again after 50 ms: the next sweep frees the keys.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(limiter.check(&RateKey::of(b"x")).await.is_ok());
        assert_eq!(limiter.limiter.len(), 1);
    }
}
