//! All shared state, one trait per kind: [`DedupeStore`] (delivery ids), [`RateLimiter`]
//! (GCRA allowances), [`PacingStore`] (receivers' limits), [`Queue`] (the outbound queue) and [`SubscriptionStore`]. Two backends implement each,
//! side by side: `embedded/` (one process: memory plus redb files in `store.path`) and
//! `redis/` (several replicas sharing one dedupe window, one limit and one queue). The
//! server opens the configured one with [`open`] and hands out trait objects; nothing
//! outside this module names a backend.

pub mod dedupe;
mod embedded;
mod health;
pub mod history;
mod measured;
pub mod pacing;
pub mod queue;
pub mod rate_limit;
mod redis;
pub mod reseal;
pub mod seal;
pub mod subscriptions;

use std::sync::Arc;

use crate::config::{StoreConfig, StoreEncryption};
use measured::{measure, Measured, Op};
use seal::Sealer;

pub use dedupe::{Claim, DedupeStore};
pub use health::StoreHealth;
pub use history::HistoryStore;
pub use pacing::{Limits, PacingStore, Slot, Taken};
pub use queue::Queue;
pub use rate_limit::{Allowance, Decision, RateKey, RateLimiter};
pub use subscriptions::SubscriptionStore;

/// Why a store operation failed, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store holds as many ids (or rate-limit keys) as it may; refusing is safer than
    /// forgetting.
    #[error("the store holds its maximum of {capacity} keys")]
    Full { capacity: usize },
    /// The store did not answer or cannot write now (Redis down or slow, a full disk, a
    /// file being reopened); the same operation may succeed later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// What the store holds cannot be read back.
    #[error("corrupt data in the store: {0}")]
    Corrupt(String),
    /// A sealed value does not open (`store.encryption`): a key is missing, or the value
    /// was altered.
    #[error("cannot decrypt {0}")]
    Sealed(String),
}

/// The store's own marks, beside what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The key check ([`seal::key_check`]): the store cannot start without its key.
    KeyCheck,
    /// The id of the key a complete reseal pass last sealed everything with.
    SealedWith,
}

impl Mark {
    fn file(self) -> &'static str {
        match self {
            Mark::KeyCheck => "key-check",
            Mark::SealedWith => "sealed-with",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Mark::KeyCheck => "key_check",
            Mark::SealedWith => "sealed_with",
        }
    }
}

/// The configured store, from which each service takes the parts it uses.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    sealer: Arc<Sealer>,
}

#[derive(Clone)]
enum Backend {
    Embedded(Arc<embedded::EmbeddedStore>),
    Redis(Arc<redis::RedisStore>),
}

/// Opens the store `config` names: creates the embedded store's directory, or prepares the
/// Redis connections (without waiting for Redis: `/readyz` says when it answers).
/// With `encryption`, what the store keeps is sealed; an embedded store sealed with a key
/// that is not given refuses to open (Redis is checked when it first answers).
pub fn open(config: &StoreConfig, encryption: Option<&StoreEncryption>) -> Result<Store, String> {
    let sealer = Arc::new(Sealer::new(encryption));
    let backend = match config {
        StoreConfig::Embedded { path, max_ids } => {
            let store = embedded::EmbeddedStore::open(path, *max_ids)?;
            store.check_keys(&sealer)?;
            Backend::Embedded(Arc::new(store))
        }
        StoreConfig::Redis(redis) => Backend::Redis(Arc::new(redis::RedisStore::connect(redis)?)),
    };
    Ok(Store { backend, sealer })
}

impl Store {
    /// The dedupe store, for `routes` routes that dedupe (the embedded store gives each an
    /// equal share of `store.max_ids`).
    pub fn dedupe(&self, routes: usize) -> Result<Arc<dyn DedupeStore>, String> {
        Ok(match &self.backend {
            Backend::Embedded(store) => Arc::new(Measured::new(store.dedupe(routes)?)),
            Backend::Redis(redis) => {
                Arc::new(Measured::new(redis::RedisDedupe::new(redis.clone())))
            }
        })
    }

    /// `route`'s limiter: in this process (holding at most `max_keys` keys), or shared by
    /// every replica through Redis (where each key expires once its allowance is whole).
    pub fn rate_limiter(
        &self,
        route: &str,
        allowance: Allowance,
        max_keys: usize,
    ) -> Arc<dyn RateLimiter> {
        match &self.backend {
            Backend::Embedded(_) => Arc::new(Measured::new(embedded::LocalRateLimiter::new(
                allowance, max_keys,
            ))),
            Backend::Redis(redis) => Arc::new(Measured::new(redis::RedisRateLimiter::new(
                redis.clone(),
                route,
                allowance,
            ))),
        }
    }

    /// Receivers' limits: in this process, or shared by every replica through Redis.
    pub fn pacing(&self) -> Arc<dyn PacingStore> {
        match &self.backend {
            Backend::Embedded(_) => Arc::new(Measured::new(embedded::LocalPacing::default())),
            Backend::Redis(redis) => {
                Arc::new(Measured::new(redis::RedisPacing::new(redis.clone())))
            }
        }
    }

    /// The outbound queue.
    pub fn queue(&self) -> Result<Arc<dyn Queue>, String> {
        Ok(match &self.backend {
            Backend::Embedded(store) => Arc::new(Measured::new(store.queue(self.sealer.clone())?)),
            Backend::Redis(redis) => Arc::new(Measured::new(redis::RedisQueue::new(
                redis.clone(),
                self.sealer.clone(),
            ))),
        })
    }

    /// The delivery history; opened once per process (the worker writes it, the admin API
    /// and the portal read it).
    pub fn history(&self) -> Result<Arc<dyn HistoryStore>, String> {
        Ok(match &self.backend {
            Backend::Embedded(store) => {
                Arc::new(Measured::new(store.history(self.sealer.clone())?))
            }
            Backend::Redis(redis) => Arc::new(Measured::new(redis::RedisHistory::new(
                redis.clone(),
                self.sealer.clone(),
            ))),
        })
    }

    /// Subscriptions; opened once per process (the outbound side shares it with the admin API).
    pub fn subscriptions(&self) -> Result<Arc<dyn SubscriptionStore>, String> {
        Ok(match &self.backend {
            Backend::Embedded(store) => {
                Arc::new(Measured::new(store.subscriptions(self.sealer.clone())?))
            }
            Backend::Redis(redis) => Arc::new(Measured::new(redis::RedisSubscriptions::new(
                redis.clone(),
                self.sealer.clone(),
            ))),
        })
    }

    /// What seals the store's values (`store.encryption`).
    pub fn sealer(&self) -> &Arc<Sealer> {
        &self.sealer
    }

    /// One of the store's own marks: `key_check`, or `sealed_with` (the key a complete
    /// reseal pass last sealed everything with).
    pub async fn mark(&self, name: Mark) -> Result<Option<Vec<u8>>, String> {
        match &self.backend {
            Backend::Embedded(store) => store.mark(name.file()),
            Backend::Redis(redis) => redis.mark(name.key()).await,
        }
    }

    pub async fn set_mark(&self, name: Mark, bytes: &[u8]) -> Result<(), String> {
        match &self.backend {
            Backend::Embedded(store) => store.set_mark(name.file(), bytes),
            Backend::Redis(redis) => redis.set_mark(name.key(), bytes).await,
        }
    }

    /// Whether the store is usable now, for `/readyz`: the embedded store's directory takes
    /// files and its files take writes; Redis answers `PING` within the command timeout.
    pub async fn check(&self) -> Result<(), String> {
        match &self.backend {
            Backend::Embedded(store) => store.check(),
            Backend::Redis(redis) => {
                measure(&Op::new("ping"), redis.ping())
                    .await
                    .map_err(|e| format!("redis: {e}"))?;
                redis.check_keys(&self.sealer).await
            }
        }
    }
}

/// An embedded store in a directory of its own, for unit tests: the store and the
/// directory, which must outlive it.
#[cfg(test)]
pub fn test_store(max_ids: usize) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        &crate::config::StoreConfig::Embedded {
            path: dir.path().to_path_buf(),
            max_ids,
        },
        None,
    )
    .unwrap();
    (store, dir)
}
