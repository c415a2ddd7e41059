//! Delivery ids: claimed before a delivery, recorded once the app answered, released when
//! it did not, so each id reaches the app once.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

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
