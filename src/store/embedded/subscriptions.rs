//! Subscriptions in `store.path/subscriptions.redb` (one JSON document per id, each write
//! one durable commit); their delivery counts in memory (they start afresh with the
//! process). One process owns the file, so the version is a counter in memory. The same
//! file keeps when each tenant's portal tokens were last revoked.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::File;
use crate::store::seal::Sealer;
use crate::store::subscriptions::{
    DeliveryNote, Subscription, SubscriptionStats, SubscriptionStore,
};
use crate::store::StoreError;

const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("subscriptions");
/// Each tenant's last portal-token revocation (unix ms).
const PORTAL_REVOKED: TableDefinition<&str, u64> = TableDefinition::new("portal_revoked");

pub struct EmbeddedSubscriptions {
    file: File,
    /// Each document is sealed whole (`store.encryption`), bound to its id.
    sealer: Arc<Sealer>,
    version: AtomicU64,
    stats: Mutex<HashMap<String, SubscriptionStats>>,
}

impl EmbeddedSubscriptions {
    pub fn open(dir: &Path, sealer: Arc<Sealer>) -> Result<Self, String> {
        let file = File::open(dir, "subscriptions.redb", "subscription", |txn| {
            txn.open_table(SUBSCRIPTIONS)?;
            txn.open_table(PORTAL_REVOKED)?;
            Ok(())
        })?;
        Ok(EmbeddedSubscriptions {
            file,
            sealer,
            version: AtomicU64::new(1),
            stats: Mutex::default(),
        })
    }

    fn stats_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, SubscriptionStats>> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sealer's name for the table (the associated data binds each document to it).
const SEALED: &str = "subscriptions";

fn decode(sealer: &Sealer, id: &str, bytes: &[u8]) -> Result<Subscription, StoreError> {
    let plain = sealer
        .open(SEALED, id, bytes)
        .map_err(|e| StoreError::Sealed(format!("subscription {id}: {e}")))?;
    serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(format!("subscription: {e}")))
}

#[async_trait]
impl SubscriptionStore for EmbeddedSubscriptions {
    async fn load(&self) -> Result<(u64, Vec<Subscription>), StoreError> {
        let version = self.version.load(Ordering::Acquire);
        let sealer = self.sealer.clone();
        let all = self
            .file
            .run(move |db| {
                let txn = db.begin_read()?;
                let table = txn.open_table(SUBSCRIPTIONS)?;
                let mut all = Vec::new();
                for row in table.iter()? {
                    let (id, doc) = row?;
                    all.push(decode(&sealer, id.value(), doc.value())?);
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
        let json = self.sealer.seal(SEALED, &id, &json);
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

    async fn reseal(&self) -> Result<usize, StoreError> {
        let sealer = self.sealer.clone();
        let rewritten = self
            .file
            .run(move |db| {
                // One write transaction: nothing changes between the read and the write.
                let txn = db.begin_write()?;
                let mut resealed = Vec::new();
                {
                    let table = txn.open_table(SUBSCRIPTIONS)?;
                    for row in table.iter()? {
                        let (id, doc) = row?;
                        let (id, doc) = (id.value(), doc.value());
                        if !sealer.is_current(doc) {
                            let plain = sealer.open(SEALED, id, doc).map_err(|e| {
                                StoreError::Sealed(format!("subscription {id}: {e}"))
                            })?;
                            resealed.push((id.to_string(), sealer.seal(SEALED, id, &plain)));
                        }
                    }
                }
                let mut table = txn.open_table(SUBSCRIPTIONS)?;
                for (id, doc) in &resealed {
                    table.insert(id.as_str(), doc.as_slice())?;
                }
                drop(table);
                txn.commit()?;
                Ok(resealed.len())
            })
            .await?;
        if rewritten > 0 {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        Ok(rewritten)
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
