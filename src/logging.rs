//! `tracing` set-up: human text by default, JSON lines for log pipelines.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Without `HOOKGATE_LOG`: info, but not the lines Pingora prints as its server and
/// listeners start and stop (some 30 of them, which hookgate's own startup summary and
/// its one `hookgate stopped` line replace). Their warnings and errors still show.
pub const DEFAULT_FILTER: &str = "info,pingora_core::server=warn,pingora_core::services=warn";

/// Installs the global subscriber. The filter comes from `HOOKGATE_LOG` (e.g. `debug`,
/// `hookgate=debug,pingora=warn`) and defaults to [`DEFAULT_FILTER`]. Pingora's own `log` records are
/// captured too, but debug and trace records of other crates never are, whatever the
/// filter says: Pingora's, h2's and rustls' print raw request heads and answers, bearer
/// tokens and `Hookgate-Secret` included.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("HOOKGATE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.finish().with(secret_safe()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(secret_safe())
            .init(),
    }
}

/// Passes info and above from anywhere, and debug and trace only from hookgate itself.
fn secret_safe() -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    FilterFn::new(|meta| {
        *meta.level() <= tracing::Level::INFO || meta.target().starts_with("hookgate")
    })
}

/// At most one log line a second for a condition that can hold for every request (a full
/// or unreachable store): a flood of identical lines hides everything else and costs
/// more than the refusals it reports. The metrics still count each one.
#[derive(Default)]
pub struct Throttle {
    last_ms: std::sync::atomic::AtomicU64,
    skipped: std::sync::atomic::AtomicU64,
}

impl Throttle {
    /// A throttle that lets the first line through; `const`, for a `static`.
    pub const fn new() -> Self {
        Throttle {
            last_ms: std::sync::atomic::AtomicU64::new(0),
            skipped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines skipped since the last one)` when a line may be logged at `now_ms`.
    pub fn allow(&self, now_ms: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last_ms.load(Relaxed);
        if now_ms.saturating_sub(last) >= 1000
            && self
                .last_ms
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Relaxed));
        }
        self.skipped.fetch_add(1, Relaxed);
        None
    }
}

/// A [`Throttle`] per key, such as a route and a refusal's code: each kind of line is
/// logged once a second on its own. Keys must come from a small fixed set.
pub struct Throttles<K>(std::sync::Mutex<std::collections::HashMap<K, Throttle>>);

impl<K> Default for Throttles<K> {
    fn default() -> Self {
        Throttles(std::sync::Mutex::default())
    }
}

impl<K: std::hash::Hash + Eq> Throttles<K> {
    /// [`Throttle::allow`] for `key`.
    pub fn allow(&self, key: K, now_ms: u64) -> Option<u64> {
        let mut throttles = self.0.lock().unwrap_or_else(|e| e.into_inner());
        throttles.entry(key).or_default().allow(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_line_a_second_through_and_counts_the_rest() {
        let throttle = Throttle::default();
        assert_eq!(throttle.allow(5_000), Some(0));
        assert_eq!(throttle.allow(5_100), None);
        assert_eq!(throttle.allow(5_900), None);
        assert_eq!(throttle.allow(6_000), Some(2));
        assert_eq!(throttle.allow(6_001), None);
    }

    #[test]
    fn each_key_has_its_own_throttle() {
        let throttles = Throttles::default();
        assert_eq!(throttles.allow(("a", "invalid_signature"), 5_000), Some(0));
        assert_eq!(throttles.allow(("a", "route_not_found"), 5_000), Some(0));
        assert_eq!(throttles.allow(("a", "invalid_signature"), 5_500), None);
        assert_eq!(throttles.allow(("a", "invalid_signature"), 6_000), Some(1));
    }
}
