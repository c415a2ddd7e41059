use std::process::ExitCode;

use clap::Parser;
use hookgate::cli::{Cli, Command};
use hookgate::commands::{self, EXIT_CONFIG};
use hookgate::{admin_client, config, logging, server};

/// jemalloc, with its background purging, gives the kernel back memory freed after a
/// flood of connections; glibc's malloc kept it (see docs/src/security.md, Hardening and limits).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options. `tcache_max`: Pingora takes a 64 KiB body buffer for every request
/// and every answer it reads; above the default 32 KiB each of those went to jemalloc's
/// shared extents (an eighth of the inbound thread's CPU) instead of its thread cache.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"tcache_max:131072\0";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => commands::check(&config),
        Command::Schemes { command } => commands::schemes(&command),
        Command::Sign {
            scheme,
            id,
            timestamp,
            curl,
            file,
        } => commands::sign(&scheme, id, timestamp, curl, &file),
        Command::Verify {
            scheme,
            headers,
            tolerance,
            now,
            file,
        } => commands::verify(&scheme, &headers, tolerance, now, &file),
        Command::Deliveries { admin, command } => admin_client::deliveries(&admin, &command),
        Command::Endpoints { admin, command } => admin_client::endpoints(&admin, &command),
        Command::Routes { admin, command } => admin_client::routes(&admin, &command),
        Command::Portal { admin, command } => admin_client::portal(&admin, &command),
        Command::Jobs { admin, command } => admin_client::jobs(&admin, &command),
        Command::Store { admin, command } => admin_client::store::store(&admin, &command),
        Command::Reload {
            admin,
            allow_weaker,
        } => admin_client::reload(&admin, allow_weaker),
        Command::Subscriptions { admin, command } => admin_client::subscriptions(&admin, &command),
        Command::Inject {
            listen,
            tls_cert,
            tls_key,
            image,
        } => {
            logging::init(cli.log_format);
            let sidecar = hookgate::inject::patch::Sidecar { image };
            match hookgate::inject::build(&listen, &tls_cert, &tls_key, sidecar) {
                Ok(server) => {
                    tracing::info!(%listen, "hookgate injector starting");
                    // An admission review takes milliseconds; 5 s is plenty to finish one.
                    server::run(server, std::time::Duration::from_secs(5));
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    tracing::error!("cannot start: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config } => {
            logging::init(cli.log_format);
            let loaded = match config::load_file(&config) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!("{e}");
                    }
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let server = match server::build(&loaded, Some(&config)) {
                Ok(server) => server,
                Err(message) => {
                    tracing::error!("cannot start: {message}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(config = %config.display(), version = env!("CARGO_PKG_VERSION"), "hookgate starting");
            for (part, what) in config::notices::summary(&loaded) {
                tracing::info!("{part}: {what}");
            }
            for warning in config::notices::warnings(&loaded) {
                tracing::warn!("{warning}");
            }
            let stopped = server::run(server, loaded.server.grace_period);
            let drained_ms = stopped.drained_in.as_millis() as u64;
            if stopped.cut > 0 {
                tracing::warn!(
                    signal = stopped.signal,
                    drained_ms,
                    cut = stopped.cut,
                    "hookgate stopped: the grace period ran out with work under way"
                );
            } else {
                tracing::info!(signal = stopped.signal, drained_ms, "hookgate stopped");
            }
            ExitCode::SUCCESS
        }
    }
}
