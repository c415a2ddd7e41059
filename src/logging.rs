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
