//! The one clock: Unix time in milliseconds. Signatures' timestamps are its seconds;
//! attempt times, due times, leases and expiries are its milliseconds. Unit tests move it
//! forward on their own thread ([`advance`]) to see windows and leases end without waiting.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let system = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    #[cfg(test)]
    let system = system + OFFSET_MS.with(std::cell::Cell::get);
    system
}

/// Nanoseconds since the Unix epoch, for trace spans (not moved by tests' [`advance`]).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Seconds since the Unix epoch, as signature timestamps count.
pub fn unix_now() -> u64 {
    now_ms() / 1000
}

#[cfg(test)]
thread_local! {
    static OFFSET_MS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Moves this thread's clock forward by `by`.
#[cfg(test)]
pub fn advance(by: std::time::Duration) {
    OFFSET_MS.with(|offset| offset.set(offset.get() + by.as_millis() as u64));
}
