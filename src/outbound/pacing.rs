//! Protecting receivers: how many deliveries an endpoint gets at once, how many per
//! period, and a circuit breaker that stops hammering an endpoint that keeps failing.
//! Whatever is held back waits in the queue; nothing is dropped.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{CircuitConfig, DeliveryPolicy};

/// How long a message waits before it is looked at again when its endpoint is busy.
const BUSY_RECHECK: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    streak_start_ms: Option<u64>,
    open_until_ms: Option<u64>,
    /// After a pause, one attempt probes the endpoint; others wait for its outcome.
    probing: bool,
}

pub struct Pacing {
    slots: Arc<Semaphore>,
    limiter: Option<DefaultDirectRateLimiter>,
    breaker: Mutex<Breaker>,
    circuit: CircuitConfig,
    time_scale: f64,
}

/// Whether a message may be attempted now.
pub enum Admit {
    /// Yes; hold the permit for the attempt.
    Go(OwnedSemaphorePermit),
    /// Not yet: look again after this long.
    Wait(Duration),
}

impl Pacing {
    pub fn new(policy: &DeliveryPolicy, time_scale: f64) -> Self {
        let limiter = policy.rate_limit.map(|rate| {
            let per_request = rate.per_request();
            let quota = Quota::with_period(per_request)
                .expect("a rate's period is never zero")
                .allow_burst(NonZeroU32::new(rate.count.max(1)).expect("at least 1"));
            RateLimiter::direct(quota)
        });
        Pacing {
            slots: Arc::new(Semaphore::new(policy.concurrency as usize)),
            limiter,
            breaker: Mutex::new(Breaker::default()),
            circuit: policy.circuit.clone(),
            time_scale,
        }
    }

    fn scaled(&self, d: Duration) -> u64 {
        (d.as_millis() as f64 * self.time_scale) as u64
    }

    pub fn admit(&self, now_ms: u64) -> Admit {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Admit::Wait(BUSY_RECHECK);
        };
        let (open_until, probing) = {
            let breaker = self.lock();
            (breaker.open_until_ms, breaker.probing)
        };
        match open_until {
            Some(until) if until > now_ms => {
                return Admit::Wait(Duration::from_millis(until - now_ms))
            }
            Some(_) if probing => return Admit::Wait(BUSY_RECHECK),
            _ => {}
        }
        // The rate is checked after the breaker, so a paused endpoint spends none of it.
        if let Some(limiter) = &self.limiter {
            if let Err(not_until) = limiter.check() {
                return Admit::Wait(not_until.wait_time_from(DefaultClock::default().now()));
            }
        }
        let mut breaker = self.lock();
        if breaker.open_until_ms.is_some() {
            breaker.probing = true;
        }
        Admit::Go(permit)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an attempt's outcome; the reason when this opened the circuit.
    pub fn record(&self, success: bool, now_ms: u64) -> Option<String> {
        let mut breaker = self.lock();
        if success {
            *breaker = Breaker::default();
            return None;
        }
        breaker.consecutive_failures += 1;
        let streak_start = *breaker.streak_start_ms.get_or_insert(now_ms);
        let reason = if breaker.probing {
            Some("the probe after the pause failed too".to_string())
        } else if breaker.open_until_ms.is_none()
            && breaker.consecutive_failures >= self.circuit.failures
        {
            Some(format!(
                "{} attempts failed in a row",
                breaker.consecutive_failures
            ))
        } else if breaker.open_until_ms.is_none()
            && self
                .circuit
                .streak
                .is_some_and(|streak| now_ms - streak_start >= self.scaled(streak))
        {
            Some(format!(
                "failing for {}s without a success",
                (now_ms - streak_start) / 1000
            ))
        } else {
            None
        };
        if reason.is_some() {
            breaker.probing = false;
            breaker.open_until_ms = Some(now_ms + self.scaled(self.circuit.pause));
        }
        reason
    }

    /// When an open circuit lets a probe through (unix ms).
    pub fn open_until(&self) -> Option<u64> {
        self.lock().open_until_ms
    }

    pub fn is_open(&self, now_ms: u64) -> bool {
        let breaker = self.lock();
        breaker.open_until_ms.is_some_and(|until| until > now_ms) || breaker.probing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;

    fn config(concurrency: u32, rate: Option<Rate>, failures: u32) -> DeliveryPolicy {
        DeliveryPolicy {
            retry: crate::config::retry::preset("jobylon").unwrap(),
            concurrency,
            rate_limit: rate,
            circuit: CircuitConfig {
                failures,
                streak: None,
                pause: Duration::from_secs(60),
            },
        }
    }

    #[test]
    fn concurrency_and_rate_hold_messages_back() {
        let pacing = Pacing::new(&config(2, None, 10), 1.0);
        let (a, b) = (pacing.admit(0), pacing.admit(0));
        assert!(matches!((&a, &b), (Admit::Go(_), Admit::Go(_))));
        assert!(matches!(pacing.admit(0), Admit::Wait(_)), "a third waits");
        drop(a);
        assert!(matches!(pacing.admit(0), Admit::Go(_)));

        let limited = Pacing::new(
            &config(
                10,
                Some(Rate {
                    count: 2,
                    per: Duration::from_secs(60),
                }),
                10,
            ),
            1.0,
        );
        assert!(matches!(limited.admit(0), Admit::Go(_)));
        assert!(matches!(limited.admit(0), Admit::Go(_)));
        assert!(matches!(limited.admit(0), Admit::Wait(d) if d > Duration::from_secs(25)));
    }

    #[test]
    fn the_circuit_opens_pauses_probes_and_closes() {
        let pacing = Pacing::new(&config(10, None, 3), 1.0);
        assert_eq!(pacing.record(false, 0), None);
        assert_eq!(pacing.record(false, 0), None);
        assert_eq!(
            pacing.record(false, 0).as_deref(),
            Some("3 attempts failed in a row")
        );
        assert!(
            matches!(pacing.admit(1_000), Admit::Wait(d) if d == Duration::from_millis(59_000))
        );
        assert!(
            matches!(pacing.admit(60_000), Admit::Go(_)),
            "one probe after the pause"
        );
        assert!(
            matches!(pacing.admit(60_000), Admit::Wait(_)),
            "the others wait for it"
        );
        assert!(
            pacing.record(false, 60_500).is_some(),
            "a failed probe reopens"
        );
        assert!(matches!(pacing.admit(120_500), Admit::Go(_)));
        assert_eq!(pacing.record(true, 121_000), None);
        assert!(!pacing.is_open(121_000));
        assert!(matches!(pacing.admit(121_000), Admit::Go(_)));
    }
}
