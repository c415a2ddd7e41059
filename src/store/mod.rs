//! Shared state behind small traits: embedded (one process: memory plus redb files) or
//! Redis (several replicas sharing one dedupe window, one rate limit and one queue).

mod embedded;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use embedded::EmbeddedDedupe;

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::metrics::METRICS;

/// Whether the embedded store's files take writes. A full disk or an I/O error breaks a
/// redb file until it is reopened; the part that hit it says so here, `/readyz` reports
/// it, and the part says again once it has reopened and caught up.
#[derive(Default)]
pub struct StoreHealth {
    broken: Mutex<BTreeMap<&'static str, String>>,
}

impl StoreHealth {
    /// `part` (`dedupe` or `queue`) cannot write.
    pub fn failed(&self, part: &'static str, error: &dyn std::fmt::Display) {
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        if broken.insert(part, error.to_string()).is_none() {
            tracing::error!(part, %error, "the embedded store cannot write; retrying");
        }
        METRICS.store_up.set(0);
    }

    /// `part` writes again.
    pub fn recovered(&self, part: &'static str) {
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        if broken.remove(part).is_some() {
            tracing::info!(part, "the embedded store writes again");
        }
        METRICS.store_up.set(i64::from(broken.is_empty()));
    }

    /// What is broken, for `/readyz`.
    pub fn problem(&self) -> Option<String> {
        let broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        (!broken.is_empty()).then(|| {
            broken
                .iter()
                .map(|(part, error)| format!("{part}: {error}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

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
