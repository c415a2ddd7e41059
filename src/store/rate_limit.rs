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

/// A limited key as a store holds it: the first 16 bytes of the SHA-256 of what requests
/// are keyed on. Memory per key is fixed whatever the length of a header that names it,
/// and 128 bits keep two senders' keys from meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateKey([u8; 16]);

impl RateKey {
    pub fn of(value: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, value);
        let mut key = [0; 16];
        key.copy_from_slice(&digest.as_ref()[..16]);
        RateKey(key)
    }

    /// 32 hex digits, for stores that key by text.
    pub fn hex(&self) -> String {
        const_hex::encode(self.0)
    }
}

/// One route's limiter: takes one request from a key's allowance.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn check(&self, key: &RateKey) -> Result<Decision, StoreError>;
}
