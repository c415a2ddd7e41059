//! Subscriptions: a vendor's customers subscribe URLs to event types, and an event the app
//! publishes once (`POST /events`, [`super::events`]) is delivered to each matching one.
//! [`Subscriptions`] keeps them in the store (shared by replicas on Redis), holds an index
//! of them for matching, rebuilt when the store's version moves, and builds each one's
//! endpoint (signer, limits, breaker) for the worker.

pub mod index;
pub mod input;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::deliver::Endpoint;
use super::egress_proxy::ProxyRoute;
use super::operational::Notices;
use crate::clock::now_ms;
use crate::config::{
    parse_destination, Cidr, DeliveryMode, EndpointConfig, Secret, SignConfig, SubscriptionConfig,
};
use crate::error_response::ErrorResponse;
use crate::schemes::{self, SchemeSpec};
use crate::store::subscriptions::{DeliveryNote, SigningSecret, Subscription, SubscriptionStore};
use crate::store::{PacingStore, StoreError};
use index::Index;

/// How long a rotated-out secret still signs, unless the rotation says otherwise.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// The longest a subscription's attempt may wait for an answer (`retry.timeout`): the
/// worker's claims outlast it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest overlap a rotation may ask for.
const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct Subscriptions {
    store: Arc<dyn SubscriptionStore>,
    /// The index at the store's version last seen; none until first loaded.
    index: RwLock<Option<Arc<Index>>>,
    /// One reload at a time; the others wait for it and use its result.
    reloading: tokio::sync::Mutex<()>,
    /// Each subscription's endpoint, rebuilt when it changes or a secret's overlap ends.
    endpoints: Mutex<HashMap<String, Built>>,
    /// The SSRF guard's exceptions (`outbound.allow_private_destinations`).
    pub allow: Vec<Cidr>,
    pacing: Arc<dyn PacingStore>,
    proxy: Option<Arc<ProxyRoute>>,
    time_scale: f64,
    /// `outbound.subscriptions`, written into the store before the index is first read
    /// (and again after a config reload).
    from_config: RwLock<Arc<Vec<SubscriptionConfig>>>,
    config_written: AtomicBool,
    /// Where changes are noted as operational events.
    notices: Notices,
}

struct Built {
    updated_at: u64,
    signing: usize,
    endpoint: Arc<Endpoint>,
}

/// Why a subscription operation failed: an answer for the API.
fn store_error(e: StoreError) -> ErrorResponse {
    tracing::error!(error = %e, "subscription store");
    ErrorResponse::new(
        503,
        "store_unavailable",
        "the subscription store is unavailable; retry later",
    )
    .with_header("Retry-After", "1")
}

fn not_found(id: &str) -> ErrorResponse {
    ErrorResponse::new(
        404,
        "subscription_not_found",
        format!("no subscription {id:?}"),
    )
}

impl Subscriptions {
    pub fn new(
        store: Arc<dyn SubscriptionStore>,
        from_config: Vec<SubscriptionConfig>,
        allow: Vec<Cidr>,
        pacing: Arc<dyn PacingStore>,
        proxy: Option<Arc<ProxyRoute>>,
        time_scale: f64,
        notices: Notices,
    ) -> Self {
        Subscriptions {
            notices,
            proxy,
            from_config: RwLock::new(Arc::new(from_config)),
            config_written: Default::default(),
            store,
            index: RwLock::default(),
            reloading: tokio::sync::Mutex::default(),
            endpoints: Mutex::default(),
            allow,
            pacing,
            time_scale,
        }
    }

    /// The index at the store's current version: one read of the version (a round trip on
    /// Redis), and a reload only after a change, by this replica or another.
    pub async fn index(&self) -> Result<Arc<Index>, StoreError> {
        self.write_config_once().await?;
        let version = self.store.version().await?;
        if let Some(index) = self.cached().filter(|i| i.version == version) {
            return Ok(index);
        }
        let _one = self.reloading.lock().await;
        if let Some(index) = self.cached().filter(|i| i.version >= version) {
            return Ok(index);
        }
        let (version, all) = self.store.load().await?;
        let index = Arc::new(Index::new(version, all));
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Some(index.clone());
        // Deleted here or by another replica: their endpoints go too.
        self.lock_endpoints()
            .retain(|id, _| index.by_id.contains_key(id));
        Ok(index)
    }

    /// A reloaded config's subscriptions: written into the store before it is read next.
    pub fn reconfigure(&self, from_config: Vec<SubscriptionConfig>) {
        *self.from_config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(from_config);
        self.config_written.store(false, Ordering::Release);
    }

    fn configured(&self) -> Arc<Vec<SubscriptionConfig>> {
        self.from_config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The config file's subscriptions are in the store before anything reads it.
    async fn write_config_once(&self) -> Result<(), StoreError> {
        if self.config_written.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.reloading.lock().await;
        if !self.config_written.load(Ordering::Acquire) {
            self.write_config().await?;
            self.config_written.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Writes the config file's subscriptions into the store, as changed since the last
    /// start, and removes those no longer in it. What the store learnt since (a 410
    /// disabled one) is kept. Every replica does the same at start; the writes agree.
    async fn write_config(&self) -> Result<(), StoreError> {
        let (_, stored) = self.store.load().await?;
        let now = now_ms();
        let configured = self.configured();
        for config in configured.iter() {
            let earlier = stored.iter().find(|s| s.id == config.id);
            let wanted = from_config(config, earlier, now);
            let unchanged = earlier.is_some_and(|e| {
                Subscription {
                    updated_at: e.updated_at,
                    ..wanted.clone()
                } == *e
            });
            if !unchanged {
                self.store.put(&wanted).await?;
            }
        }
        for gone in stored
            .iter()
            .filter(|s| s.from_config && !configured.iter().any(|c| c.id == s.id))
        {
            self.store.delete(&gone.id).await?;
        }
        Ok(())
    }

    /// The index as last read, without asking the store; none before the first read.
    pub fn cached(&self) -> Option<Arc<Index>> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn get(&self, id: &str) -> Result<Arc<Subscription>, ErrorResponse> {
        let index = self.index().await.map_err(store_error)?;
        index.by_id.get(id).cloned().ok_or_else(|| not_found(id))
    }

    /// Creates a subscription from the admin API's body; the answer shows its secret (or
    /// public key), this once.
    pub async fn create(&self, body: Map<String, Value>) -> Result<Value, ErrorResponse> {
        let now = now_ms();
        let blank =
            Subscription::blank(format!("sub_{now:012x}{}", crate::ids::random_hex(8)), now);
        let input::Created {
            mut subscription,
            secret,
        } = input::create(body, blank, &self.allow).await?;
        let (secret, shown) = new_secret(&subscription, secret)?;
        subscription.secrets = vec![SigningSecret {
            value: secret,
            expires_at: None,
        }];
        self.store.put(&subscription).await.map_err(store_error)?;
        tracing::info!(subscription = %subscription.id, tenant = subscription.tenant.as_deref(), "subscription created");
        let tenant = subscription.tenant.as_deref();
        self.notices
            .subscription("subscription.created", &subscription.id, tenant, None);
        let mut answer = view(&subscription);
        answer[shown.0] = Value::String(shown.1);
        Ok(answer)
    }

    pub async fn update(&self, id: &str, body: Map<String, Value>) -> Result<Value, ErrorResponse> {
        let stored = self.get(id).await?;
        let mut subscription = input::patch(body, &stored, &self.allow).await?;
        subscription.updated_at = now_ms().max(stored.updated_at + 1);
        self.store.put(&subscription).await.map_err(store_error)?;
        let tenant = subscription.tenant.as_deref();
        self.notices
            .subscription("subscription.updated", id, tenant, None);
        Ok(view(&subscription))
    }

    pub async fn delete(&self, id: &str) -> Result<Value, ErrorResponse> {
        let stored = self.get(id).await?;
        if stored.from_config {
            return Err(ErrorResponse::new(
                409,
                "subscription_from_config",
                "this subscription is written in the config file: remove it there",
            ));
        }
        self.store.delete(id).await.map_err(store_error)?;
        self.lock_endpoints().remove(id);
        let tenant = stored.tenant.as_deref();
        self.notices
            .subscription("subscription.deleted", id, tenant, None);
        Ok(json!({ "deleted": id }))
    }

    /// A new secret (generated, or `secret` in the body); the old ones keep signing for
    /// `overlap` (`"24h"` by default; `"0s"` ends them now).
    pub async fn rotate(&self, id: &str, body: Map<String, Value>) -> Result<Value, ErrorResponse> {
        let stored = self.get(id).await?;
        let mut overlap = DEFAULT_OVERLAP;
        let mut given = None;
        for (key, value) in &body {
            match key.as_str() {
                "overlap" => {
                    overlap = value
                        .as_str()
                        .and_then(|s| crate::config::values::parse_duration(s).ok())
                        .filter(|d| *d <= MAX_OVERLAP)
                        .ok_or_else(|| {
                            ErrorResponse::new(
                                400,
                                "invalid_overlap",
                                "expected a duration such as 24h, at most 30 days",
                            )
                            .with_field("overlap")
                        })?
                }
                "secret" => {
                    let text = value
                        .as_str()
                        .filter(|s| (1..=4096).contains(&s.chars().count()));
                    given = Some(text.map(str::to_string).ok_or_else(|| {
                        ErrorResponse::new(400, "invalid_secret", "expected 1 to 4096 characters")
                            .with_field("secret")
                    })?)
                }
                other => {
                    return Err(ErrorResponse::new(
                        400,
                        "unknown_field",
                        format!("unknown field {other:?} (known: overlap, secret)"),
                    )
                    .with_field(other))
                }
            }
        }
        let now = now_ms();
        let (secret, shown) = new_secret(&stored, given)?;
        let mut subscription = (*stored).clone();
        let ends = now + overlap.as_millis() as u64;
        for old in &mut subscription.secrets {
            old.expires_at = Some(old.expires_at.map_or(ends, |end| end.min(ends)));
        }
        subscription
            .secrets
            .retain(|s| s.expires_at.is_none_or(|end| end > now));
        subscription.secrets.insert(
            0,
            SigningSecret {
                value: secret,
                expires_at: None,
            },
        );
        subscription.updated_at = now.max(stored.updated_at + 1);
        self.store.put(&subscription).await.map_err(store_error)?;
        tracing::info!(subscription = %id, overlap_s = overlap.as_secs(), "subscription secret rotated");
        let mut answer = view(&subscription);
        answer[shown.0] = Value::String(shown.1);
        answer["previous_secrets_expire_at"] = json!(ends);
        Ok(answer)
    }

    /// Stops deliveries to a subscription (an operator, or its receiver's `410 Gone`).
    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: &str,
    ) -> Result<Value, ErrorResponse> {
        let stored = self.get(id).await?;
        let mut subscription = (*stored).clone();
        subscription.enabled = enabled;
        subscription.disabled_reason = (!enabled).then(|| reason.to_string());
        subscription.updated_at = now_ms().max(stored.updated_at + 1);
        self.store.put(&subscription).await.map_err(store_error)?;
        if !enabled {
            tracing::warn!(subscription = %id, reason, "subscription disabled");
        }
        if enabled != stored.enabled {
            let event_type = match enabled {
                true => "subscription.enabled",
                false => "subscription.disabled",
            };
            let tenant = subscription.tenant.as_deref();
            self.notices
                .subscription(event_type, id, tenant, Some(reason));
        }
        Ok(view(&subscription))
    }

    /// Counts a delivery's fate for the subscription's figures in the admin API.
    pub async fn note(&self, id: &str, note: DeliveryNote) {
        if let Err(e) = self.store.note(id, &note, now_ms()).await {
            tracing::warn!(subscription = %id, error = %e, "could not count a delivery");
        }
    }

    pub async fn stats(&self, id: &str) -> Result<Value, ErrorResponse> {
        let stats = self.store.stats(id).await.map_err(store_error)?;
        Ok(json!(stats))
    }

    /// Refuses every portal token `tenant` was issued until `at_ms` (unix ms).
    pub async fn revoke_portal_tokens(
        &self,
        tenant: &str,
        at_ms: u64,
    ) -> Result<(), ErrorResponse> {
        let revoked = self.store.revoke_portal_tokens(tenant, at_ms).await;
        revoked.map_err(store_error)
    }

    pub async fn portal_tokens_revoked_at(
        &self,
        tenant: &str,
    ) -> Result<Option<u64>, ErrorResponse> {
        let revoked = self.store.portal_tokens_revoked_at(tenant).await;
        revoked.map_err(store_error)
    }

    /// Where the worker notes deliveries' fates as operational events.
    pub fn notices(&self) -> &Notices {
        &self.notices
    }

    fn lock_endpoints(&self) -> std::sync::MutexGuard<'_, HashMap<String, Built>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint deliveries to `s` go through: signed with its secrets in their overlap,
    /// behind the SSRF guard, with its own limits and breaker (named by its id).
    pub fn endpoint(&self, s: &Subscription, now_ms: u64) -> Result<Arc<Endpoint>, String> {
        let signing = s.signing_secrets(now_ms);
        if let Some(built) = self.lock_endpoints().get(&s.id) {
            if built.updated_at == s.updated_at && built.signing == signing.len() {
                return Ok(built.endpoint.clone());
            }
        }
        let config = EndpointConfig {
            name: s.id.clone(),
            url: parse_destination(&s.url)?,
            url_match: None,
            sign: SignConfig {
                scheme: SchemeSpec::Named(s.scheme.clone()),
                secrets: signing.iter().map(|v| Secret::new(v.to_string())).collect(),
            },
            policy: input::policy(s).map_err(|e| e.message)?,
            mode: DeliveryMode::Async,
            // Files on this host: only subscriptions written in the config name them.
            tls: self
                .configured()
                .iter()
                .find(|c| c.id == s.id && s.from_config)
                .and_then(|c| c.tls.clone()),
            trace_propagation: s.trace_propagation,
            auth: s.auth.clone(),
        };
        let endpoint = Arc::new(
            Endpoint::guarded(
                config,
                self.allow.clone(),
                self.pacing.clone(),
                self.time_scale,
            )?
            .with_proxy(self.proxy.clone()),
        );
        self.lock_endpoints().insert(
            s.id.clone(),
            Built {
                updated_at: s.updated_at,
                signing: signing.len(),
                endpoint: endpoint.clone(),
            },
        );
        Ok(endpoint)
    }
}

/// The subscription a config entry describes; its state (enabled, and why not) and
/// creation time come from `earlier`, the stored one.
fn from_config(
    config: &SubscriptionConfig,
    earlier: Option<&Subscription>,
    now: u64,
) -> Subscription {
    let scheme = match &config.sign.scheme {
        SchemeSpec::Named(name) => name.clone(),
        SchemeSpec::Hmac(_) => unreachable!("subscriptions sign with named schemes"),
    };
    let policy = |key: &str| config.policy.get(key).cloned();
    Subscription {
        id: config.id.clone(),
        tenant: config.tenant.clone(),
        url: config.url.clone(),
        event_types: config.event_types.clone(),
        filters: config.filters.clone(),
        scheme,
        algorithm: None,
        secrets: config
            .sign
            .secrets
            .iter()
            .map(|s| SigningSecret {
                value: s.expose().to_string(),
                expires_at: None,
            })
            .collect(),
        retry: policy("retry"),
        rate_limit: policy("rate_limit").and_then(|v| v.as_str().map(str::to_string)),
        concurrency: policy("concurrency")
            .and_then(|v| v.as_u64())
            .map(|n| n as u32),
        enabled: earlier.is_none_or(|e| e.enabled),
        disabled_reason: earlier.and_then(|e| e.disabled_reason.clone()),
        description: config.description.clone(),
        trace_propagation: config.trace_propagation,
        metadata: Map::new(),
        auth: config.auth.clone(),
        created_at: earlier.map_or(now, |e| e.created_at),
        updated_at: now,
        from_config: true,
    }
}

/// A subscription as the API shows it: everything but its secrets.
pub fn view(s: &Subscription) -> Value {
    let mut value = serde_json::to_value(s).expect("a subscription always serializes");
    if let Value::Object(map) = &mut value {
        map.remove("secrets");
        map.insert("signing_secrets".into(), json!(s.secrets.len()));
        if let Some(auth) = &s.auth {
            map.insert("auth".into(), auth.masked());
        }
    }
    value
}

/// The secret a subscription signs with next: the one given (checked against its scheme)
/// or a new one. Also what the answer shows, once: `secret`, or for Ed25519 `public_key`.
fn new_secret(
    s: &Subscription,
    given: Option<String>,
) -> Result<(String, (&'static str, String)), ErrorResponse> {
    let bad = |e: String| ErrorResponse::new(400, "invalid_secret", e).with_field("secret");
    if s.algorithm.as_deref() == Some("ed25519") {
        let private = match given {
            Some(key) => key,
            None => schemes::ed25519::generate(),
        };
        let public = schemes::ed25519::public_key(&private).map_err(bad)?;
        return Ok((private, ("public_key", public)));
    }
    let secret = given.unwrap_or_else(|| {
        format!(
            "whsec_{}",
            schemes::crypto::base64_encode(&crate::ids::random_bytes::<32>())
        )
    });
    let scheme = schemes::build(&SchemeSpec::Named(s.scheme.clone())).map_err(bad)?;
    scheme.key(&secret).map_err(bad)?;
    Ok((secret.clone(), ("secret", secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_of_subscriptions_deleted_by_another_replica_are_let_go() {
        let (store, _dir) = crate::store::test_store(10);
        let backend = store.subscriptions().unwrap();
        let allow = vec![Cidr::parse("0.0.0.0/0").unwrap()];
        let subscriptions = Subscriptions::new(
            backend.clone(),
            Vec::new(),
            allow,
            store.pacing(),
            None,
            1.0,
            crate::outbound::operational::channel(Default::default()).0,
        );
        let body = json!({ "url": "http://192.0.2.1/hook", "event_types": ["*"] });
        let Value::Object(body) = body else {
            unreachable!()
        };
        let created = subscriptions.create(body).await.unwrap();
        let id = created["id"].as_str().unwrap();
        let subscription = subscriptions.get(id).await.unwrap();
        subscriptions.endpoint(&subscription, now_ms()).unwrap();
        assert_eq!(subscriptions.lock_endpoints().len(), 1);
        // Another replica deletes it: the store, not this registry.
        backend.delete(id).await.unwrap();
        subscriptions.index().await.unwrap();
        assert!(subscriptions.lock_endpoints().is_empty());
    }
}
