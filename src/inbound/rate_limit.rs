//! Rate limiting stage: GCRA per key, answered with 429 + Retry-After and IETF
//! `RateLimit-*` headers. Keys are hashed to 16 bytes, and the embedded store holds at
//! most `rate_limit.max_keys` of them per route. The state is in this process (governor) or, with
//! `store.kind: redis`, shared by every replica (one limit for all of them).
//!
//! It runs after verification, on authentic requests only: a limit keyed by route or by
//! the provider's header would otherwise let anyone spend the real sender's quota with
//! forged requests. Forged floods are cheap to refuse anyway (one HMAC each).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::http::RequestHeader;

use crate::clock::now_ms;
use crate::config::{KeySource, OnStoreError, RateLimitConfig};
use crate::error_response::ErrorResponse;
use crate::logging::Throttle;
use crate::metrics::METRICS;
use crate::store::{Allowance, Decision, RateKey, RateLimiter, Store, StoreError};

/// Seconds a sender should wait when the shared store failed (fail closed).
pub const STORE_RETRY_AFTER: &str = "5";

/// Cloned when a config reload keeps a route's limit: the state is shared.
#[derive(Clone)]
pub struct RouteLimiter {
    limiter: Arc<dyn RateLimiter>,
    key: KeySource,
    /// The key of a limit `key: route`: the same for every request.
    route_key: RateKey,
    on_store_error: OnStoreError,
    /// Requests allowed at once (the burst).
    capacity: u32,
    max_keys: usize,
    /// The cap of keys is logged at most once a second.
    full_logged: Arc<Throttle>,
}

/// Response headers for a request that was let through.
pub type RateLimitHeaders = Vec<(&'static str, String)>;

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RouteLimiter {
    /// `route`'s limiter, from the store: in this process, or shared by every replica.
    pub fn new(
        route: &str,
        config: &RateLimitConfig,
        on_store_error: OnStoreError,
        store: &Store,
    ) -> Self {
        let allowance = Allowance {
            capacity: config.burst.unwrap_or(config.limit.count).max(1),
            per_request: config.limit.per_request(),
        };
        RouteLimiter {
            limiter: store.rate_limiter(route, allowance, config.max_keys),
            on_store_error,
            key: config.key.clone(),
            route_key: RateKey::of(route.as_bytes()),
            capacity: allowance.capacity,
            max_keys: config.max_keys,
            full_logged: Arc::new(Throttle::new()),
        }
    }

    /// The request's key, hashed to a fixed size from the raw bytes it is keyed on (a
    /// header's value is taken as it is, whatever its length or encoding).
    fn key(&self, header: &RequestHeader, client_ip: Option<IpAddr>) -> RateKey {
        match &self.key {
            KeySource::Route => self.route_key,
            KeySource::ClientIp => match client_ip {
                Some(IpAddr::V4(ip)) => RateKey::of(&ip.octets()),
                Some(IpAddr::V6(ip)) => RateKey::of(&ip.octets()),
                None => RateKey::of(b"unknown"),
            },
            KeySource::Header(name) => {
                // Each value of a repeated header counts: the sender cannot add a second
                // one to get a fresh allowance.
                let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
                for value in header.headers.get_all(name.as_str()) {
                    digest.update(value.as_bytes());
                    digest.update(b"\n");
                }
                RateKey::of(digest.finish().as_ref())
            }
        }
    }

    /// The cap of keys was reached: counted each time, logged at most once a second.
    fn note_full(&self, route: &'static str) {
        METRICS.record_rate_limit_keys_full(route);
        if let Some(skipped) = self.full_logged.allow(now_ms()) {
            tracing::warn!(
                route,
                max_keys = self.max_keys,
                skipped,
                "rate limit keys at their cap: new keys are refused until keys fall idle (rate_limit.max_keys; counted in hookgate_rate_limit_keys_full_total)"
            );
        }
    }

    /// Takes one request from the key's allowance, or answers 429 (or 503 when the shared
    /// store fails and the route fails closed).
    pub async fn check(
        &self,
        route: &'static str,
        header: &RequestHeader,
        client_ip: Option<IpAddr>,
    ) -> Result<RateLimitHeaders, ErrorResponse> {
        let key = self.key(header, client_ip);
        let decision = match self.limiter.check(&key).await {
            Ok(decision) => decision,
            Err(StoreError::Full { .. }) if self.on_store_error == OnStoreError::FailOpen => {
                self.note_full(route);
                return Ok(Vec::new());
            }
            Err(StoreError::Full { .. }) => {
                self.note_full(route);
                return Err(ErrorResponse::new(
                    503,
                    "rate_limit_keys_full",
                    "this route's rate limit holds as many keys as it may; retry later",
                )
                .with_header("Retry-After", STORE_RETRY_AFTER));
            }
            Err(e) if self.on_store_error == OnStoreError::FailOpen => {
                tracing::warn!(route, error = %e, "rate limit skipped: the store failed and the route fails open");
                return Ok(Vec::new());
            }
            Err(e) => {
                tracing::error!(route, error = %e, "rate limit store failed");
                return Err(ErrorResponse::new(
                    503,
                    "rate_limit_unavailable",
                    "the rate limit store is unavailable; retry later",
                )
                .with_header("Retry-After", STORE_RETRY_AFTER));
            }
        };
        match decision {
            Decision::Allowed { remaining, reset } => Ok(vec![
                ("RateLimit-Limit", self.capacity.to_string()),
                ("RateLimit-Remaining", remaining.to_string()),
                ("RateLimit-Reset", ceil_secs(reset).to_string()),
            ]),
            Decision::Wait(wait) => {
                let retry_after = ceil_secs(wait).max(1).to_string();
                Err(ErrorResponse::new(
                    429,
                    "rate_limited",
                    format!(
                        "more than {} requests for this key; retry in {retry_after}s",
                        self.capacity
                    ),
                )
                .with_header("Retry-After", retry_after.clone())
                .with_header("RateLimit-Limit", self.capacity.to_string())
                .with_header("RateLimit-Remaining", "0")
                .with_header("RateLimit-Reset", retry_after))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;

    fn limiter(count: u32, per_secs: u64, burst: Option<u32>, key: KeySource) -> RouteLimiter {
        let (store, _dir) = crate::store::test_store(10);
        RouteLimiter::new(
            "r",
            &RateLimitConfig {
                key,
                limit: Rate {
                    count,
                    per: Duration::from_secs(per_secs),
                },
                burst,
                max_keys: 100_000,
            },
            OnStoreError::FailClosed,
            &store,
        )
    }

    #[tokio::test]
    async fn the_request_after_the_burst_gets_429_with_retry_after() {
        let limiter = limiter(100, 60, None, KeySource::Route);
        let header = RequestHeader::build("POST", b"/", None).unwrap();
        for i in 0..100 {
            let headers = limiter.check("r", &header, None).await.unwrap();
            assert_eq!(headers[1], ("RateLimit-Remaining", (99 - i).to_string()));
        }
        let refused = limiter.check("r", &header, None).await.unwrap_err();
        assert_eq!(refused.status, 429);
        // One request is earned back every 600 ms: Retry-After rounds up to 1.
        assert!(
            refused.headers.contains(&("Retry-After", "1".to_string())),
            "{:?}",
            refused.headers
        );
    }

    #[tokio::test]
    async fn keys_are_limited_separately() {
        let limiter = limiter(1, 60, None, KeySource::Header("authorization".into()));
        let mut a = RequestHeader::build("POST", b"/", None).unwrap();
        a.insert_header("Authorization", "a").unwrap();
        let mut b = RequestHeader::build("POST", b"/", None).unwrap();
        b.insert_header("Authorization", "b").unwrap();
        assert!(limiter.check("r", &a, None).await.is_ok());
        assert!(limiter.check("r", &b, None).await.is_ok());
        let refused = limiter.check("r", &a, None).await.unwrap_err();
        assert!(
            refused.headers.contains(&("Retry-After", "60".to_string())),
            "{:?}",
            refused.headers
        );
    }
}
