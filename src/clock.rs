//! The one clock: Unix time in milliseconds. Signatures' timestamps are its seconds;
//! attempt times, due times, leases and expiries are its milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch, as signature timestamps count.
pub fn unix_now() -> u64 {
    now_ms() / 1000
}
