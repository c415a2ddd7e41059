//! What happened lately, kept in memory for the console and the admin API: the last
//! inbound refusals ([`refusals`]). The inbound side writes them and the admin port reads
//! them, so they belong to neither.

pub mod refusals;

pub use refusals::{RecentRefusals, Refusal};
