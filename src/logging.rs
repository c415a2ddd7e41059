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

/// Installs the global subscriber. The filter comes from `HOOKGATE_LOG` (e.g. `debug`,
/// `hookgate=debug,pingora=warn`) and defaults to `info`. Pingora's own `log` records are
/// captured too, but debug and trace records of other crates never are, whatever the
/// filter says: Pingora's, h2's and rustls' print raw request heads and answers, bearer
/// tokens and `Hookgate-Secret` included.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("HOOKGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
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
}
