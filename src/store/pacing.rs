//! How hard one receiver is pushed: deliveries in flight to it at once, and deliveries per
//! period (GCRA). Counted in this process, or by every replica that shares the Redis store,
//! so `concurrency: 4` means four at the receiver however many hookgates deliver to it.

use std::time::Duration;

use async_trait::async_trait;

use super::{Allowance, StoreError};

/// How long a message waits before it is looked at again when its receiver is busy.
pub const BUSY: Duration = Duration::from_millis(100);

/// One receiver's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deliveries in flight at once; at least 1.
    pub concurrency: u32,
    /// Deliveries per period, if limited.
    pub rate: Option<Allowance>,
    /// How long a slot is held at most: one whose holder died lapses after it.
    pub lease: Duration,
}

/// A slot held for one delivery; given back with [`PacingStore::give_back`].
#[derive(Debug, PartialEq, Eq)]
pub struct Slot(pub(super) String);

/// What the store gave of what was asked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Deliver this many now, each holding its slot.
    pub slots: Vec<Slot>,
    /// For the rest, at the receiver's limits: look again after this long.
    pub wait: Duration,
}

#[async_trait]
pub trait PacingStore: Send + Sync {
    /// Takes up to `wanted` slots of `receiver`'s concurrency, each with one delivery of
    /// its rate (both or neither), in one step however many are wanted.
    async fn take(&self, receiver: &str, limits: &Limits, wanted: u32)
        -> Result<Taken, StoreError>;
    /// Gives a slot back once its delivery is over.
    async fn give_back(&self, receiver: &str, slot: Slot) -> Result<(), StoreError>;
}
