//! The outbound side: an app posts plain JSON to hookgate on localhost, and hookgate
//! signs it and delivers it with durable retries.

pub mod queue;
pub mod retry;
