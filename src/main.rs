use std::process::ExitCode;

use clap::Parser;
use hookgate::cli::{Cli, Command};
use hookgate::{config, logging, server};

/// sysexits' EX_CONFIG: the configuration is wrong.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config::load_file(&config) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{}: {} problem(s)", config.display(), errors.0.len());
                ExitCode::from(EXIT_CONFIG)
            }
        },
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
            let server = match server::build(&loaded) {
                Ok(server) => server,
                Err(message) => {
                    tracing::error!("cannot start: {message}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(config = %config.display(), version = env!("CARGO_PKG_VERSION"), "hookgate starting");
            server::run(server);
            tracing::info!("hookgate stopped");
            ExitCode::SUCCESS
        }
    }
}
