//! hookgate: a webhook sidecar and edge gateway on Pingora.
pub mod config;
