//! Subscriptions: a customer's URL subscribed to event types, with the secrets its
//! deliveries are signed with. Kept whole (one JSON document each) in the store, so
//! replicas on Redis share them; every change bumps a version, from which each process
//! knows when its in-memory index of them is stale.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::config::ReceiverAuth;

/// One subscription as stored. The admin API shows it through a view without `secrets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub url: String,
    /// Exact names, `prefix.*` wildcards, or `*`.
    pub event_types: Vec<String>,
    /// Labels an event must carry, each with this value (a per-job subscription).
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    pub scheme: String,
    /// `ed25519` for Standard Webhooks' asymmetric `v1a`; otherwise the scheme's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Newest first; the older ones sign too until they expire (rotation's overlap).
    pub secrets: Vec<SigningSecret>,
    /// As an endpoint's `retry:` in the YAML (a preset, a schedule, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<serde_json::Value>,
    /// As an endpoint's `rate_limit:`, such as `10/s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    pub enabled: bool,
    /// Why it is disabled (an operator, or the receiver's `410 Gone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Send each attempt's `traceparent` to the receiver.
    #[serde(default = "propagates")]
    pub trace_propagation: bool,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// What the receiver asks for on top of the signature; the API shows it masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ReceiverAuth>,
    /// Unix milliseconds.
    pub created_at: u64,
    pub updated_at: u64,
    /// Written in the YAML (`outbound.subscriptions`): the API shows it but does not change it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_config: bool,
}

fn propagates() -> bool {
    true
}

/// A secret (or, for `ed25519`, a private key) and until when it signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub value: String,
    /// Unix ms; none for the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl Subscription {
    /// A subscription with nothing set yet but its id and times (unix ms): no tenant, no
    /// types, enabled, signed with Standard Webhooks.
    pub fn blank(id: String, now_ms: u64) -> Self {
        Subscription {
            id,
            tenant: None,
            url: String::new(),
            event_types: Vec::new(),
            filters: BTreeMap::new(),
            scheme: "standard-webhooks".into(),
            algorithm: None,
            secrets: Vec::new(),
            retry: None,
            rate_limit: None,
            concurrency: None,
            enabled: true,
            disabled_reason: None,
            description: String::new(),
            trace_propagation: true,
            metadata: serde_json::Map::new(),
            auth: None,
            created_at: now_ms,
            updated_at: now_ms,
            from_config: false,
        }
    }

    /// The secrets that sign now: the current one and those still in their overlap.
    pub fn signing_secrets(&self, now_ms: u64) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|end| end > now_ms))
            .map(|s| s.value.as_str())
            .collect()
    }
}

/// What became of one of a subscription's deliveries, for its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryNote {
    Delivered,
    /// A failed attempt, retried later: its status, or why there was none.
    Failed {
        status: Option<u16>,
        error: String,
    },
    /// Out of attempts, or refused for good.
    Dead {
        status: Option<u16>,
        error: String,
    },
}

/// A subscription's counts, as the admin API shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStats {
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl SubscriptionStats {
    /// Counts one delivery's fate at `at_ms` (the in-memory backends' bookkeeping).
    pub fn count(&mut self, note: &DeliveryNote, at_ms: u64) {
        match note {
            DeliveryNote::Delivered => {
                self.delivered += 1;
                self.last_success_at = Some(at_ms);
                return;
            }
            DeliveryNote::Failed { .. } => self.failed_attempts += 1,
            DeliveryNote::Dead { .. } => {
                self.failed_attempts += 1;
                self.dead += 1;
            }
        }
        self.last_error_at = Some(at_ms);
        self.last_error = note.error();
    }
}

impl DeliveryNote {
    /// A failure in a few words: the status, or why there was none.
    pub fn error(&self) -> Option<String> {
        match self {
            DeliveryNote::Delivered => None,
            DeliveryNote::Failed { status, error } | DeliveryNote::Dead { status, error } => {
                Some(status.map_or_else(|| error.clone(), |s| format!("HTTP {s}")))
            }
        }
    }
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Every subscription and the version they are at.
    async fn load(&self) -> Result<(u64, Vec<Subscription>), StoreError>;
    /// The version: it changes with every write, by any replica.
    async fn version(&self) -> Result<u64, StoreError>;
    /// Creates or replaces a subscription (by id).
    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError>;
    /// Whether it existed.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
    /// Counts one delivery's fate at `at_ms`.
    async fn note(&self, id: &str, note: &DeliveryNote, at_ms: u64) -> Result<(), StoreError>;
    async fn stats(&self, id: &str) -> Result<SubscriptionStats, StoreError>;
    /// Refuses every portal token of `tenant` issued at or before `at_ms` (unix ms).
    async fn revoke_portal_tokens(&self, tenant: &str, at_ms: u64) -> Result<(), StoreError>;
    /// When `tenant`'s portal tokens were last revoked, if ever.
    async fn portal_tokens_revoked_at(&self, tenant: &str) -> Result<Option<u64>, StoreError>;
    /// Rewrites every subscription not sealed as the store seals now (`store.encryption`:
    /// in clear before there were keys, or with a key that is no longer the first), each
    /// only if unchanged meanwhile; how many it rewrote.
    async fn reseal(&self) -> Result<usize, StoreError>;
}
