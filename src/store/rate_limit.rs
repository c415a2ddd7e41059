//! GCRA rate limits: each key has an allowance of `capacity` requests at once, one earned
//! back every `per_request`.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// The allowance a limiter gives every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Requests allowed at once (the burst); at least 1.
    pub capacity: u32,
    /// Time to earn back one request; never zero.
    pub per_request: Duration,
}

/// What a limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let through; `remaining` requests are left, all of them back after `reset`.
    Allowed { remaining: u32, reset: Duration },
    /// Over the limit: allowed again after this long.
    Wait(Duration),
}

/// One route's limiter: takes one request from a key's allowance.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn check(&self, key: &str) -> Result<Decision, StoreError>;
}
