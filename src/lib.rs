//! hookgate: a webhook sidecar and edge gateway on Pingora.
pub mod admin;
pub mod admin_client;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod error_response;
pub mod http_io;
pub mod inbound;
pub mod inject;
pub mod logging;
pub mod metrics;
pub mod outbound;
pub mod schemes;
pub mod server;
pub mod store;
pub mod telemetry;
