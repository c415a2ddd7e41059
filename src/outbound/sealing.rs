//! Sealing the store as `store.encryption` says, in the background from the start: what
//! was written in clear before there were keys, or sealed with a key that is no longer the
//! first, is rewritten; then the store's key check records the first key, after which
//! the old key may go. Until then a restart needs the old key too, and says so.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::store::{Store, SubscriptionStore};

/// How long a failed pass (the store unavailable) waits before the next.
const AGAIN: Duration = Duration::from_secs(5);

pub struct Sealing {
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub store: Store,
}

impl Sealing {
    async fn pass(&self) -> Result<usize, String> {
        let resealed = self
            .subscriptions
            .reseal()
            .await
            .map_err(|e| e.to_string())?;
        self.store.mark_sealed().await?;
        Ok(resealed)
    }
}

#[async_trait]
impl BackgroundService for Sealing {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            match self.pass().await {
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
