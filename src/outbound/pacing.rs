//! Protecting receivers: how many deliveries an endpoint gets at once, how many per
//! period (both kept by the store, so replicas sharing Redis share them), and a circuit
//! breaker that stops hammering an endpoint that keeps failing. Whatever is held back
//! waits in the queue; nothing is dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{CircuitConfig, DeliveryPolicy};
use crate::store::pacing::BUSY;
use crate::store::{Allowance, Limits, PacingStore, Slot, Taken};

/// How long messages wait when the store cannot tell whether the receiver has room.
const STORE_DOWN: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    streak_start_ms: Option<u64>,
    open_until_ms: Option<u64>,
    /// After a pause, one attempt probes the endpoint; others wait for its outcome.
    probing: bool,
    /// The last attempt this process made, for the console's health column.
    last: Option<LastAttempt>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LastAttempt {
    pub at_ms: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// An endpoint's health as this process has seen it: its last attempt, how many failed in
/// a row, and its circuit (`closed`, `open`, or `probing` after a pause).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub last_attempt: Option<LastAttempt>,
    pub failure_streak: u32,
    pub circuit: &'static str,
}

pub struct Pacing {
    /// The endpoint's name: its limits' key in the store.
    receiver: String,
    limits: Limits,
    store: Arc<dyn PacingStore>,
    /// Shared with the same endpoint rebuilt by a config reload ([`Pacing::continue_from`]).
    breaker: Arc<Mutex<Breaker>>,
    circuit: CircuitConfig,
    time_scale: f64,
}

/// Which of the messages asked about may be attempted now.
pub struct Admitted {
    /// This many may: each holds its slot for its attempt, then gives it back.
    pub go: Vec<Held>,
    /// The rest look again after this long.
    pub wait: Duration,
}

impl Admitted {
    fn none(wait: Duration) -> Self {
        Admitted {
            go: Vec::new(),
            wait,
        }
    }
}

/// A slot of an endpoint's concurrency, held for one attempt.
pub struct Held {
    store: Arc<dyn PacingStore>,
    receiver: String,
    slot: Option<Slot>,
}

impl Held {
    /// Gives the slot back once the attempt is over.
    pub async fn release(mut self) {
        if let Some(slot) = self.slot.take() {
            give_back(&*self.store, &self.receiver, slot).await;
        }
    }
}

impl Drop for Held {
    /// A slot not released (its attempt's task was cancelled) is given back all the same.
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let (store, receiver) = (self.store.clone(), std::mem::take(&mut self.receiver));
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { give_back(&*store, &receiver, slot).await });
            }
        }
    }
}

async fn give_back(store: &dyn PacingStore, receiver: &str, slot: Slot) {
    if let Err(e) = store.give_back(receiver, slot).await {
        // The slot lapses at the end of its lease.
        tracing::warn!(endpoint = %receiver, error = %e, "could not give a delivery slot back");
    }
}

impl Pacing {
    pub fn new(
        receiver: &str,
        policy: &DeliveryPolicy,
        store: Arc<dyn PacingStore>,
        time_scale: f64,
    ) -> Self {
        let limits = Limits {
            concurrency: policy.concurrency.max(1),
            rate: policy.rate_limit.map(|rate| Allowance {
                capacity: rate.count.max(1),
                per_request: rate.per_request(),
            }),
            // An attempt is over after its connect, write and read timeouts at most.
            lease: policy.retry.timeout * 3 + Duration::from_secs(5),
        };
        Pacing {
            receiver: receiver.to_string(),
            limits,
            store,
            breaker: Arc::default(),
            circuit: policy.circuit.clone(),
            time_scale,
        }
    }

    fn scaled(&self, d: Duration) -> u64 {
        (d.as_millis() as f64 * self.time_scale) as u64
    }

    /// Admits up to `wanted` of an endpoint's messages at once.
    pub async fn admit(&self, now_ms: u64, wanted: usize) -> Admitted {
        // The breaker first, so a paused endpoint spends none of its rate.
        let probe = {
            let mut breaker = self.lock();
            match breaker.open_until_ms {
                Some(until) if until > now_ms => {
                    return Admitted::none(Duration::from_millis(until - now_ms))
                }
                Some(_) if breaker.probing => return Admitted::none(BUSY),
                Some(_) => {
                    breaker.probing = true;
                    true
                }
                None => false,
            }
        };
        let wanted = if probe { 1 } else { wanted as u32 };
        let taken = match self.store.take(&self.receiver, &self.limits, wanted).await {
            Ok(taken) => taken,
            Err(_) => Taken {
                slots: Vec::new(),
                wait: STORE_DOWN, // counted in the store's error metric
            },
        };
        if probe && taken.slots.is_empty() {
            self.lock().probing = false;
        }
        let go = taken
            .slots
            .into_iter()
            .map(|slot| Held {
                store: self.store.clone(),
                receiver: self.receiver.clone(),
                slot: Some(slot),
            })
            .collect();
        Admitted {
            go,
            wait: taken.wait,
        }
    }

    /// Keeps the circuit of `earlier`, this endpoint as the config before a reload built it:
    /// an open circuit stays open and a failure streak goes on, instead of a reload letting
    /// every held message at a failing receiver at once.
    pub fn continue_from(&mut self, earlier: &Pacing) {
        self.breaker = earlier.breaker.clone();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps an attempt for [`Pacing::health`]; [`Pacing::record`] counts it.
    pub fn note(&self, last: LastAttempt) {
        self.lock().last = Some(last);
    }

    /// Records an attempt's outcome; the reason when this opened the circuit.
    pub fn record(&self, success: bool, now_ms: u64) -> Option<String> {
        let mut breaker = self.lock();
        if success {
            let last = breaker.last.take();
            *breaker = Breaker {
                last,
                ..Breaker::default()
            };
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

    pub fn health(&self, now_ms: u64) -> Health {
        let breaker = self.lock();
        let circuit = if breaker.probing {
            "probing"
        } else if breaker.open_until_ms.is_some_and(|until| until > now_ms) {
            "open"
        } else {
            "closed"
        };
        Health {
            last_attempt: breaker.last.clone(),
            failure_streak: breaker.consecutive_failures,
            circuit,
        }
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

    /// Pacing over the embedded store (the suite in `tests/store_behaviour.rs` runs the
    /// store's side over Redis too).
    fn embedded_pacing(policy: &DeliveryPolicy) -> (Pacing, tempfile::TempDir) {
        let (store, dir) = crate::store::test_store(10);
        (Pacing::new("e", policy, store.pacing(), 1.0), dir)
    }

    #[tokio::test]
    async fn concurrency_and_rate_hold_messages_back() {
        let (pacing, _dir) = embedded_pacing(&config(2, None, 10));
        let mut two = pacing.admit(0, 3).await;
        assert_eq!(two.go.len(), 2, "a third waits");
        assert!(pacing.admit(0, 1).await.go.is_empty());
        two.go.pop().unwrap().release().await;
        assert_eq!(pacing.admit(0, 1).await.go.len(), 1);

        let rate = Rate {
            count: 2,
            per: Duration::from_secs(60),
        };
        let (limited, _dir) = embedded_pacing(&config(10, Some(rate), 10));
        assert_eq!(limited.admit(0, 1).await.go.len(), 1);
        let second = limited.admit(0, 5).await;
        assert_eq!(second.go.len(), 1, "two a minute");
        assert!(second.wait > Duration::from_secs(25), "{:?}", second.wait);
    }

    #[tokio::test]
    async fn the_circuit_opens_pauses_probes_and_closes() {
        let (pacing, _dir) = embedded_pacing(&config(10, None, 3));
        assert_eq!(pacing.record(false, 0), None);
        assert_eq!(pacing.record(false, 0), None);
        assert_eq!(
            pacing.record(false, 0).as_deref(),
            Some("3 attempts failed in a row")
        );
        let paused = pacing.admit(1_000, 5).await;
        assert!(paused.go.is_empty());
        assert_eq!(paused.wait, Duration::from_millis(59_000));
        let probe = pacing.admit(60_000, 5).await;
        assert_eq!(probe.go.len(), 1, "one probe after the pause");
        assert!(
            pacing.admit(60_000, 5).await.go.is_empty(),
            "the others wait for it"
        );
        assert!(
            pacing.record(false, 60_500).is_some(),
            "a failed probe reopens"
        );
        assert_eq!(pacing.admit(120_500, 5).await.go.len(), 1, "a probe again");
        assert_eq!(pacing.record(true, 121_000), None);
        assert!(!pacing.is_open(121_000));
        assert_eq!(pacing.admit(121_000, 5).await.go.len(), 5);
    }

    #[tokio::test]
    async fn a_rebuilt_endpoint_keeps_its_open_circuit() {
        let (pacing, _dir) = embedded_pacing(&config(10, None, 2));
        pacing.record(false, 0);
        assert!(pacing.record(false, 0).is_some());
        let (mut rebuilt, _dir2) = embedded_pacing(&config(10, None, 5));
        assert!(!rebuilt.is_open(1_000), "a new endpoint starts closed");
        rebuilt.continue_from(&pacing);
        assert!(rebuilt.is_open(1_000));
        assert!(rebuilt.admit(1_000, 5).await.go.is_empty());
        // Attempts still in flight under the old config count for the new one too.
        assert_eq!(pacing.record(true, 2_000), None);
        assert!(!rebuilt.is_open(2_000));
    }
}
