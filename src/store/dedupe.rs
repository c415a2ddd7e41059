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

    /// Claims every one of `keys` or none: `Claimed`, or what the first key that is not
    /// free holds. One request's keys (its id and its signed content) go in one operation;
    /// a backend that can claim them in one step (one lock, one round trip) does.
    async fn claim_all(&self, keys: &[String], lease: Duration) -> Result<Claim, StoreError> {
        claim_each(self, keys, lease).await
    }

    /// Records every one of `keys` as delivered, as [`DedupeStore::complete`] does.
    async fn complete_all(
        &self,
        keys: &[String],
        status: u16,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        complete_each(self, keys, status, ttl).await
    }
}

/// [`DedupeStore::claim_all`] one key at a time, releasing the keys it claimed when a
/// later one is not free.
pub async fn claim_each<S: DedupeStore + ?Sized>(
    store: &S,
    keys: &[String],
    lease: Duration,
) -> Result<Claim, StoreError> {
    for (claimed, key) in keys.iter().enumerate() {
        let found = store.claim(key, lease).await;
        if matches!(found, Ok(Claim::Claimed)) {
            continue;
        }
        for key in &keys[..claimed] {
            if let Err(e) = store.release(key).await {
                // It lapses after its lease instead.
                tracing::error!(error = %e, "could not release a claimed id");
            }
        }
        return found;
    }
    Ok(Claim::Claimed)
}

/// [`DedupeStore::complete_all`] one key at a time: every key is tried; the first error
/// is returned.
pub async fn complete_each<S: DedupeStore + ?Sized>(
    store: &S,
    keys: &[String],
    status: u16,
    ttl: Duration,
) -> Result<(), StoreError> {
    let mut result = Ok(());
    for key in keys {
        if let Err(e) = store.complete(key, status, ttl).await {
            result = result.and(Err(e));
        }
    }
    result
}
