//! Sealing the store as `store.encryption` says, in the background from the start: a
//! [`Resealer`] pass when the store's values are not all sealed with the first key yet (the
//! first start with keys, or with a new first key), tried again while the store cannot be
//! read. The key check stays where it is: `hookgate store rotate-key` moves it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::store::reseal::Resealer;

/// How long a failed pass (the store unavailable) waits before the next.
const AGAIN: Duration = Duration::from_secs(5);

pub struct Sealing {
    pub resealer: Arc<Resealer>,
}

#[async_trait]
impl BackgroundService for Sealing {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                sealed = self.resealer.at_start() => match sealed {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "cannot seal the store as store.encryption says yet; trying again in 5 s"),
                },
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(AGAIN) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
