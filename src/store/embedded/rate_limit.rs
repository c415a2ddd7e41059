//! Rate limits in this process: governor's GCRA, one state per key in a concurrent map,
//! swept of idle keys so per-key state cannot grow without bound.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

use crate::store::{Allowance, Decision, RateLimiter, StoreError};

type Limiter = governor::RateLimiter<
    String,
    DashMapStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// How often idle keys are dropped.
const EVICT_EVERY: Duration = Duration::from_secs(30);

pub struct LocalRateLimiter {
    limiter: Arc<Limiter>,
    allowance: Allowance,
}

impl LocalRateLimiter {
    pub fn new(allowance: Allowance) -> Self {
        let quota = Quota::with_period(allowance.per_request)
            .expect("a rate's period is never zero")
            .allow_burst(NonZeroU32::new(allowance.capacity).expect("burst is at least 1"));
        let limiter = Arc::new(
            governor::RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
        );
        spawn_evictor(Arc::downgrade(&limiter));
        LocalRateLimiter { limiter, allowance }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str) -> Result<Decision, StoreError> {
        let Allowance {
            capacity,
            per_request,
        } = self.allowance;
        Ok(match self.limiter.check_key(&key.to_string()) {
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
