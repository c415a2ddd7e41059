//! Sealing subscriptions as `store.encryption` says, in the background from the start:
//! those written in clear before there were keys, or sealed with a key that is no longer
//! the first, are rewritten. (Queued messages and history rows are sealed when they are
//! written; those written before keep how they were written, so an older key stays
//! listed while they may need it: the store's key check names the first key it was
//! sealed with, and a start without that key is refused.)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::store::SubscriptionStore;

/// How long a failed pass (the store unavailable) waits before the next.
const AGAIN: Duration = Duration::from_secs(5);

pub struct Sealing {
    pub subscriptions: Arc<dyn SubscriptionStore>,
}

#[async_trait]
impl BackgroundService for Sealing {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            match self.subscriptions.reseal().await {
                Ok(0) => return,
                Ok(resealed) => {
                    tracing::info!(resealed, "subscriptions sealed as store.encryption says");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot seal the store as store.encryption says yet; trying again in 5 s");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(AGAIN) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
