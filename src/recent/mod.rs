//! What happened lately, kept in memory for the console and the admin API: the last
//! inbound refusals ([`refusals`]) and the last outbound deliveries ([`deliveries`]). The
//! services write them and the admin port reads them, so they belong to neither.

pub mod deliveries;
pub mod refusals;

pub use deliveries::RecentDeliveries;
pub use refusals::{RecentRefusals, Refusal};
