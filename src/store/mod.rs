//! Shared state behind small traits: embedded (one process: memory plus redb files) or
//! Redis (several replicas sharing one dedupe window, one rate limit and one queue).

mod embedded;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use embedded::EmbeddedDedupe;

/// What a claim on a delivery id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First sight (or a released or expired id): the caller owns the delivery now.
    Claimed,
    /// Delivered before; the app answered this status.
    Done { status: u16 },
    /// Another request with this id is being delivered right now.
    InFlight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store holds as many ids as it may; refusing is safer than forgetting.
    Full { capacity: usize },
    /// The shared store did not answer, or answered with an error.
    Unavailable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Full { capacity } => {
                write!(f, "the dedupe store holds its maximum of {capacity} ids")
            }
            StoreError::Unavailable(e) => write!(f, "the dedupe store is unavailable: {e}"),
        }
    }
}

/// Claim / done / release over delivery ids; every operation is atomic per id.
#[async_trait]
pub trait DedupeStore: Send + Sync {
    /// Claims `key` unless it is done or in flight. A claim lapses after `lease` so a
    /// crashed delivery cannot block its id for the whole window.
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError>;
    /// Records `key` as delivered with the app's `status` for `ttl`.
    async fn complete(&self, key: &str, status: u16, ttl: Duration) -> Result<(), StoreError>;
    /// Drops an in-flight claim so the sender's retry is let through.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}
