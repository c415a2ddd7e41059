//! Receivers' limits in this process: a count of slots and a GCRA arrival time per
//! receiver. Receivers with nothing in flight and their allowance full again are dropped,
//! so the map holds only receivers in use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use crate::store::pacing::{Limits, PacingStore, Slot, Taken, BUSY};
use crate::store::StoreError;

/// How often receivers at rest are dropped from the map (in takes).
const SWEEP_EVERY: u64 = 4096;

#[derive(Default)]
pub struct LocalPacing {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    receivers: HashMap<String, Receiver>,
    takes: u64,
}

struct Receiver {
    in_flight: u32,
    /// GCRA's theoretical arrival time: the rate is spent up to here.
    tat: Instant,
}

impl Receiver {
    fn at_rest(&self, now: Instant) -> bool {
        self.in_flight == 0 && self.tat <= now
    }
}

#[async_trait]
impl PacingStore for LocalPacing {
    async fn take(
        &self,
        receiver: &str,
        limits: &Limits,
        wanted: u32,
    ) -> Result<Taken, StoreError> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.takes += 1;
        if state.takes.is_multiple_of(SWEEP_EVERY) {
            state.receivers.retain(|_, r| !r.at_rest(now));
        }
        let entry = state
            .receivers
            .entry(receiver.to_string())
            .or_insert(Receiver {
                in_flight: 0,
                tat: now,
            });
        let mut taken = Taken {
            slots: Vec::new(),
            wait: BUSY,
        };
        while (taken.slots.len() as u32) < wanted && entry.in_flight < limits.concurrency {
            if let Some(rate) = limits.rate {
                let tat = entry.tat.max(now) + rate.per_request;
                let tolerance = rate.per_request * rate.capacity;
                let allowed_at = tat.checked_sub(tolerance).unwrap_or(now);
                if allowed_at > now {
                    taken.wait = allowed_at - now;
                    break;
                }
                entry.tat = tat;
            }
            entry.in_flight += 1;
            taken.slots.push(Slot(String::new()));
        }
        Ok(taken)
    }

    async fn give_back(&self, receiver: &str, _slot: Slot) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = state.receivers.get_mut(receiver) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if entry.at_rest(Instant::now()) {
                state.receivers.remove(receiver);
            }
        }
        Ok(())
    }
}
