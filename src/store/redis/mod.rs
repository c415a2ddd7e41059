//! The shared store: Redis (or Valkey, or a managed Redis) holds dedupe ids, rate-limit
//! state and the outbound queue, so every replica pointing at it acts as one.
//!
//! Client: redis-rs (`redis` crate). It is the maintained async Rust client with cluster
//! support (fred has had no release since 2025-02), and its `ConnectionManager` reconnects
//! by itself: after Redis comes back, the next command reconnects, so nothing stays stuck.
//! Every operation is one round trip: a single command or a Lua script (atomic on the
//! server), never read-then-write from here. Each is cut off at `command_timeout`, counted
//! in `hookgate_store_operation_duration_seconds`, and failures in
//! `hookgate_store_errors_total`; what a failure means is the caller's policy.
//!
//! Keys start with `key_prefix`. Keys that a script touches together share a Redis Cluster
//! hash tag (`{...}`): the queue's keys all carry `{outbound}`; dedupe and rate-limit
//! scripts touch one key each, so they spread over the cluster's slots.

mod dedupe;
mod queue;
mod rate_limit;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use dedupe::RedisDedupe;
pub use queue::RedisQueue;
pub use rate_limit::{Decision, RedisRateLimiter};

use crate::config::RedisConfig;
use crate::metrics::{StoreLabels, METRICS};

/// Connections to one Redis, used round-robin; cheap to share behind an `Arc`.
pub struct RedisStore {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: String,
    timeout: Duration,
    /// Where the connections' reconnects run. hookgate is built before any Pingora
    /// service runtime exists, and the connections outlive any one of them.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may block; from async code it must not.
            runtime.shutdown_background();
        }
    }
}

/// A failed store operation, with what Redis or the network said (never the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisError(pub String);

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl RedisStore {
    /// Prepares the connections without waiting for Redis: hookgate starts (and `/readyz`
    /// says not ready) while Redis is down, and connects once it is up.
    pub fn connect(config: &RedisConfig) -> Result<Self, String> {
        let client = match &config.tls_ca {
            None => redis::Client::open(config.url.expose()),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("store.tls_ca: cannot read {}: {e}", path.display()))?;
                let trust = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(config.url.expose(), trust)
            }
        }
        .map_err(|e| format!("store.url: {}", describe(&e)))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // Fail fast and let the next command try again: a caller must not wait through
            // a long reconnect loop, and every command after an outage reconnects anyway.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hookgate-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("store: cannot start the Redis runtime: {e}"))?;
        let connections = {
            let _inside = runtime.enter();
            (0..config.pool_size)
                .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), manager.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("store: {}", describe(&e)))?
        };
        Ok(RedisStore {
            connections,
            next: AtomicUsize::new(0),
            prefix: config.key_prefix.clone(),
            timeout: config.command_timeout,
            runtime: Some(runtime),
        })
    }

    /// `prefix` + `suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// Runs one operation on a pooled connection, bounded by the command timeout, and
    /// records its latency or failure under `op`.
    pub async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, f(self.connection())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisError(describe(&e))),
            Err(_) => Err(RedisError(format!(
                "no answer from Redis within {}ms",
                self.timeout.as_millis()
            ))),
        };
        let labels = StoreLabels { op };
        METRICS
            .store_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            // Counted here; logged by the caller, which knows what the failure means.
            METRICS.store_errors.get_or_create(&labels).inc();
        }
        result
    }

    /// `PING`, for `/readyz`.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.run("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    }
}

/// What went wrong. redis-rs never puts the URL (which may hold a password) in its errors.
fn describe(e: &redis::RedisError) -> String {
    e.to_string()
}
