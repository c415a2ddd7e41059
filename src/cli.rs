//! Command line: `hookgate run`, `hookgate check`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "hookgate",
    version,
    about = "Webhook sidecar and edge gateway",
    long_about = "hookgate sits next to your app. Inbound, it verifies each webhook's signature, drops \
duplicates and rate-limits senders before the app sees a request. Outbound, it signs what your app \
sends and delivers it with retries.\n\nEverything is configured in one YAML file; see config.example.yaml.",
    after_help = "Examples:\n  hookgate check -c config.example.yaml\n  hookgate run -c config.example.yaml\n  hookgate --log-format json run -c /etc/hookgate/config.yaml"
)]
pub struct Cli {
    /// Log format: text for people, json for log pipelines. The level comes from HOOKGATE_LOG (default info).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "HOOKGATE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the gateway: the inbound proxy and the admin port (/healthz /readyz /metrics).
    #[command(
        long_about = "Start the gateway with the services the config file describes. SIGTERM stops it \
gracefully (listeners close, in-flight requests get server.grace_period); SIGINT stops it at once.",
        after_help = "Example:\n  REJENTO_SECRET=... hookgate run -c config.example.yaml"
    )]
    Run {
        /// The YAML config file. ${VAR} and ${VAR:-default} are taken from the environment.
        #[arg(short, long, env = "HOOKGATE_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file and list every problem in it, with line, column and key.
    #[command(
        long_about = "Validate a config file without starting anything. Exits 0 if it is valid; \
otherwise prints every problem as FILE:LINE:COLUMN: KEY: MESSAGE and exits 78.",
        after_help = "Example:\n  hookgate check -c config.example.yaml && echo valid"
    )]
    Check {
        /// The YAML config file to validate.
        #[arg(short, long, env = "HOOKGATE_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
}
