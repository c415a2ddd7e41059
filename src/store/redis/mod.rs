//! The shared store: Redis (or Valkey, or a managed Redis) holds dedupe ids, rate-limit
//! state and the outbound queue, so every replica pointing at it acts as one.
//!
//! Client: redis-rs (`redis` crate). It is the maintained async Rust client with cluster
//! support (fred has had no release since 2025-02), and its `ConnectionManager` reconnects
//! by itself: after Redis comes back, the next command reconnects, so nothing stays stuck.
//! Every operation is one round trip: a single command or a Lua script (atomic on the
//! server), never read-then-write from here. Each is cut off at `command_timeout`; the
//! store's metrics are recorded around every backend (`store/measured.rs`).
//!
//! Keys start with `key_prefix`. Keys that a script touches together share a Redis Cluster
//! hash tag (`{...}`): each queue partition's keys carry `{outbound:<n>}`; rate-limit scripts
//! touch one key each, and dedupe scripts one request's keys on a single Redis but one key
//! each on a cluster, so they spread over the cluster's slots.

mod dedupe;
mod history;
mod pacing;
mod queue;
mod queue_scripts;
mod rate_limit;
mod replace;
mod subscriptions;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};

pub use dedupe::RedisDedupe;
pub use history::RedisHistory;
pub use pacing::RedisPacing;
pub use queue::RedisQueue;
pub use rate_limit::RedisRateLimiter;
pub use subscriptions::RedisSubscriptions;

use crate::config::RedisConfig;
use crate::store::seal::{key_check, Sealer};
use crate::store::StoreError;

/// A connection to one Redis, or to a Redis Cluster (which routes each command or
/// script to the node that holds its keys' slot, and follows MOVED and ASK).
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Connections to one Redis or one Redis Cluster, used round-robin (operations on one dedupe
/// key keep to one connection, see [`RedisStore::run_for`]); cheap to share
/// behind an `Arc`.
pub struct RedisStore {
    connections: Vec<Connection>,
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

impl RedisStore {
    /// Prepares the connections without waiting for Redis: hookgate starts (and `/readyz`
    /// says not ready) while Redis is down, and connects once it is up.
    pub fn connect(config: &RedisConfig) -> Result<Self, String> {
        let trust =
            match &config.tls_ca {
                None => None,
                Some(path) => Some(TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(path).map_err(|e| {
                        format!("store.tls_ca: cannot read {}: {e}", path.display())
                    })?),
                }),
            };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hookgate-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("store: cannot start the Redis runtime: {e}"))?;
        // Created inside the runtime, the connections spawn their reconnects on it.
        let inside = runtime.enter();
        let connections = if config.cluster {
            let mut builder = ClusterClient::builder([config.url.expose()])
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .retries(2);
            if let Some(trust) = trust {
                builder = builder.certs(trust);
            }
            let client = builder
                .build()
                .map_err(|e| format!("store.url: {}", describe(&e)))?;
            // Connects in the background: hookgate starts while the cluster is down.
            let cluster = client.get_pending_async_connection_with_config(ClusterConfig::default());
            vec![Connection::Cluster(cluster); config.pool_size as usize]
        } else {
            let client = match trust {
                None => redis::Client::open(config.url.expose()),
                Some(trust) => redis::Client::build_with_tls(config.url.expose(), trust),
            }
            .map_err(|e| format!("store.url: {}", describe(&e)))?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.command_timeout))
                // Fail fast and let the next command try again: a caller must not wait
                // through a long reconnect loop, and every command after an outage
                // reconnects anyway.
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(1));
            (0..config.pool_size)
                .map(|_| {
                    ConnectionManager::new_lazy_with_config(client.clone(), manager.clone())
                        .map(Connection::Single)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("store: {}", describe(&e)))?
        };
        drop(inside);
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

    /// Whether this is a Redis Cluster: a script's keys must then share a slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self.connections.first(), Some(Connection::Cluster(_)))
    }

    fn connection(&self) -> Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// Runs one operation on a pooled connection, cut off at the command timeout.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_on(self.connection(), f).await
    }

    /// Like [`RedisStore::run`], always on the connection of `key`: operations on one key
    /// reach Redis in the order they were sent. A claim whose answer timed out is still
    /// ahead of its release on the wire; on two connections the release could run first
    /// and leave the claim behind.
    pub async fn run_for<T, F, Fut>(&self, key: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let index = stable_hash(key.as_bytes()) % self.connections.len() as u64;
        let connection = self.connections[index as usize].clone();
        self.run_on(connection, f).await
    }

    async fn run_on<T, F, Fut>(&self, connection: Connection, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::Unavailable(describe(&e))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from Redis within {}ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Fails while this Redis holds a store sealed with keys that are not given
    /// (`store.encryption`); marks a new one.
    pub async fn check_keys(&self, sealer: &Sealer) -> Result<(), String> {
        match key_check(sealer, self.mark("key_check").await?.as_deref())? {
            Some(bytes) => self.set_mark("key_check", &bytes).await,
            None => Ok(()),
        }
    }

    /// A value of the store's own (`store:key_check`, `store:sealed_with`), if written.
    pub async fn mark(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let key = self.key(&format!("store:{name}"));
        self.run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
            .map_err(|e| format!("redis: {e}"))
    }

    pub async fn set_mark(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let key = self.key(&format!("store:{name}"));
        self.run(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .query_async::<()>(&mut c)
                .await
        })
        .await
        .map_err(|e| format!("redis: {e}"))
    }

    /// One `ZSCAN` step over the sorted set `key`: the next cursor (0 at the end) and about
    /// `count` members, without their scores. Members present for a whole scan are met at
    /// least once, however the set changes meanwhile.
    pub async fn zscan(
        &self,
        key: String,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let (next, members): (u64, Vec<String>) = self
            .run(|mut c| async move {
                redis::cmd("ZSCAN")
                    .arg(key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        // Members and scores alternate.
        Ok((next, members.into_iter().step_by(2).collect()))
    }

    /// `PING` on every pooled connection, for `/readyz`: each connects on its first
    /// command, and once ready a request's claim must not be the command that waits for a
    /// connect (under load it could outlast `command_timeout`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pings = self.connections.iter().map(|connection| {
            self.run_on(connection.clone(), |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
        });
        futures_util::future::join_all(pings)
            .await
            .into_iter()
            .try_for_each(|pinged| pinged.map(|_| ()))
    }
}

/// A token no other claim or slot has, on any replica: this process's start, its pid and
/// a count.
fn unique_token() -> String {
    use std::sync::OnceLock;
    static BASE: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base =
        BASE.get_or_init(|| format!("{:x}.{:x}", crate::clock::unix_nanos(), std::process::id()));
    format!("{base}.{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// FNV-1a: a hash that is the same in every version and on every replica.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What went wrong. redis-rs never puts the URL (which may hold a password) in its errors.
fn describe(e: &redis::RedisError) -> String {
    e.to_string()
}
