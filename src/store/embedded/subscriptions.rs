//! Subscriptions in `store.path/subscriptions.redb` (one JSON document per id, each write
//! one durable commit); their delivery counts in memory (they start afresh with the
//! process). One process owns the file, so the version is a counter in memory. The same
//! file keeps when each tenant's portal tokens were last revoked.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::File;
use crate::store::subscriptions::{
    DeliveryNote, Subscription, SubscriptionStats, SubscriptionStore,
};
use crate::store::StoreError;

const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("subscriptions");
/// Each tenant's last portal-token revocation (unix ms).
const PORTAL_REVOKED: TableDefinition<&str, u64> = TableDefinition::new("portal_revoked");

pub struct EmbeddedSubscriptions {
    file: File,
    version: AtomicU64,
    stats: Mutex<HashMap<String, SubscriptionStats>>,
}

impl EmbeddedSubscriptions {
    pub fn open(dir: &Path) -> Result<Self, String> {
        let file = File::open(dir, "subscriptions.redb", "subscription", |txn| {
            txn.open_table(SUBSCRIPTIONS)?;
            txn.open_table(PORTAL_REVOKED)?;
            Ok(())
        })?;
        Ok(EmbeddedSubscriptions {
            file,
            version: AtomicU64::new(1),
            stats: Mutex::default(),
        })
    }

    fn stats_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, SubscriptionStats>> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn decode(bytes: &[u8]) -> Result<Subscription, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("subscription: {e}")))
}

#[async_trait]
impl SubscriptionStore for EmbeddedSubscriptions {
    async fn load(&self) -> Result<(u64, Vec<Subscription>), StoreError> {
        let version = self.version.load(Ordering::Acquire);
        let all = self
            .file
            .run(|db| {
                let txn = db.begin_read()?;
                let table = txn.open_table(SUBSCRIPTIONS)?;
                let mut all = Vec::new();
                for row in table.iter()? {
                    all.push(decode(row?.1.value())?);
                }
                Ok(all)
            })
            .await?;
        Ok((version, all))
    }

    async fn version(&self) -> Result<u64, StoreError> {
        Ok(self.version.load(Ordering::Acquire))
    }

    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let id = subscription.id.clone();
        let json = serde_json::to_vec(subscription).expect("a subscription always serializes");
        self.file
            .run(move |db| {
                let txn = db.begin_write()?;
                txn.open_table(SUBSCRIPTIONS)?
                    .insert(id.as_str(), json.as_slice())?;
                txn.commit()?;
                Ok(())
            })
            .await?;
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let key = id.to_string();
        let existed = self
            .file
            .run(move |db| {
                let txn = db.begin_write()?;
                let existed = txn
                    .open_table(SUBSCRIPTIONS)?
                    .remove(key.as_str())?
                    .is_some();
                txn.commit()?;
                Ok(existed)
            })
            .await?;
        self.stats_mut().remove(id);
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(existed)
    }

    async fn note(&self, id: &str, note: &DeliveryNote, at_ms: u64) -> Result<(), StoreError> {
        let mut stats = self.stats_mut();
        stats.entry(id.to_string()).or_default().count(note, at_ms);
        Ok(())
    }

    async fn stats(&self, id: &str) -> Result<SubscriptionStats, StoreError> {
        Ok(self.stats_mut().get(id).cloned().unwrap_or_default())
    }

    async fn revoke_portal_tokens(&self, tenant: &str, at_ms: u64) -> Result<(), StoreError> {
        let tenant = tenant.to_string();
        self.file
            .run(move |db| {
                let txn = db.begin_write()?;
                txn.open_table(PORTAL_REVOKED)?
                    .insert(tenant.as_str(), at_ms)?;
                txn.commit()?;
                Ok(())
            })
            .await
    }

    async fn portal_tokens_revoked_at(&self, tenant: &str) -> Result<Option<u64>, StoreError> {
        let tenant = tenant.to_string();
        self.file
            .run(move |db| {
                let txn = db.begin_read()?;
                let table = txn.open_table(PORTAL_REVOKED)?;
                Ok(table.get(tenant.as_str())?.map(|at| at.value()))
            })
            .await
    }
}
