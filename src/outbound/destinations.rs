//! Per-request destinations (`Hookgate-Destination`): each URL an app names gets an
//! endpoint of its own, kept while it is in use, so that destination's concurrency limit
//! and circuit breaker hold across its messages and one tenant's dead URL cannot slow
//! another's. A `410` disables the destination under its id (see [`destination_id`]) in
//! the queue's endpoint states, where the admin API shows it and an operator re-enables it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::deliver::Endpoint;
use super::egress_proxy::ProxyRoute;
use super::receiver_auth::Credentials;
use crate::config::{
    parse_destination, Cidr, DeliveryMode, DeliveryPolicy, EgressTls, EndpointConfig, Secret,
    SignConfig, DYNAMIC_ENDPOINT,
};
use crate::schemes::crypto::sha256_hex;
use crate::schemes::SchemeSpec;
use crate::store::queue::Target;
use crate::store::PacingStore;

/// Most destinations whose state is kept; past it, idle ones are forgotten first.
const MAX_DESTINATIONS: usize = 10_000;
/// A destination unused this long may be forgotten (its breaker starts afresh next time).
const IDLE: Duration = Duration::from_secs(600);

/// The name a per-request destination's state is kept under: `dynamic:` and a hash of its
/// URL, so that neither logs nor the admin API carry a URL's path or query, where
/// receivers often put tokens.
pub fn destination_id(url: &str) -> String {
    format!("{DYNAMIC_ENDPOINT}:{}", &sha256_hex(url.as_bytes())[..16])
}

pub struct Destinations {
    /// `outbound.secrets`, for `Hookgate-Secret-Ref`.
    secrets: HashMap<String, String>,
    /// The SSRF guard's exceptions.
    allow: Vec<Cidr>,
    /// `outbound.destinations`: what each destination gets.
    policy: DeliveryPolicy,
    /// `outbound.destinations.tls`.
    tls: Option<EgressTls>,
    /// `outbound.destinations.trace_propagation`.
    trace_propagation: bool,
    /// `outbound.destinations.auth`, one for all: they share its OAuth2 token.
    credentials: Option<Arc<Credentials>>,
    /// `outbound.proxy`.
    proxy: Option<Arc<ProxyRoute>>,
    pacing: Arc<dyn PacingStore>,
    time_scale: f64,
    known: Mutex<HashMap<String, Known>>,
}

/// `outbound.destinations`: the policy, `tls`, `trace_propagation` and `auth`.
pub type Settings = (
    DeliveryPolicy,
    Option<EgressTls>,
    bool,
    Option<Arc<Credentials>>,
);

struct Known {
    endpoint: Arc<Endpoint>,
    last_used_ms: u64,
}

impl Destinations {
    pub fn new(
        secrets: HashMap<String, String>,
        allow: Vec<Cidr>,
        (policy, tls, trace_propagation, credentials): Settings,
        pacing: Arc<dyn PacingStore>,
        proxy: Option<Arc<ProxyRoute>>,
        time_scale: f64,
    ) -> Self {
        Destinations {
            secrets,
            allow,
            policy,
            tls,
            trace_propagation,
            credentials,
            proxy,
            pacing,
            time_scale,
            known: Mutex::default(),
        }
    }

    /// What every destination gets.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// The endpoint for `target`: the one its earlier messages used, or a new one.
    pub fn endpoint(&self, target: &Target, now_ms: u64) -> Result<Arc<Endpoint>, String> {
        let secret = match (&target.secret, &target.secret_ref) {
            (Some(secret), _) => secret.clone(),
            (None, Some(name)) => self
                .secrets
                .get(name)
                .cloned()
                .ok_or_else(|| format!("secret {name:?} is no longer configured"))?,
            (None, None) => return Err("no secret to sign with".into()),
        };
        // The signer is part of the endpoint, so the secret is part of the key (hashed:
        // keys must not hold secrets).
        let key = sha256_hex(format!("{}\n{}\n{secret}", target.url, target.scheme).as_bytes());
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = known.get_mut(&key) {
            entry.last_used_ms = now_ms;
            return Ok(entry.endpoint.clone());
        }
        let endpoint = Arc::new(self.build(target, secret)?);
        if known.len() >= MAX_DESTINATIONS {
            forget_idle(&mut known, now_ms);
        }
        known.insert(
            key,
            Known {
                endpoint: endpoint.clone(),
                last_used_ms: now_ms,
            },
        );
        Ok(endpoint)
    }

    fn build(&self, target: &Target, secret: String) -> Result<Endpoint, String> {
        let config = EndpointConfig {
            name: destination_id(&target.url),
            url: parse_destination(&target.url)?,
            url_match: None,
            sign: SignConfig {
                scheme: SchemeSpec::Named(target.scheme.clone()),
                secrets: vec![Secret::new(secret)],
            },
            policy: self.policy.clone(),
            mode: DeliveryMode::Async,
            tls: self.tls.clone(),
            trace_propagation: self.trace_propagation,
            auth: None,
        };
        Endpoint::guarded(
            config,
            self.allow.clone(),
            self.pacing.clone(),
            self.time_scale,
        )
        .map(|e| {
            e.with_proxy(self.proxy.clone())
                .with_credentials(self.credentials.clone())
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.known.lock().unwrap().len()
    }
}

/// Makes room: forgets destinations idle for [`IDLE`] and not in use; if none is, the
/// least recently used one not in use.
fn forget_idle(known: &mut HashMap<String, Known>, now_ms: u64) {
    let idle_since = now_ms.saturating_sub(IDLE.as_millis() as u64);
    let in_use = |k: &Known| Arc::strong_count(&k.endpoint) > 1;
    known.retain(|_, k| in_use(k) || k.last_used_ms > idle_since);
    if known.len() >= MAX_DESTINATIONS {
        let oldest = known
            .iter()
            .filter(|(_, k)| !in_use(k))
            .min_by_key(|(_, k)| k.last_used_ms)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            known.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target {
            url: url.into(),
            scheme: "standard-webhooks".into(),
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            secret_ref: None,
        }
    }

    fn destinations() -> (Destinations, tempfile::TempDir) {
        let (store, dir) = crate::store::test_store(10);
        let policy = DeliveryPolicy::default();
        let destinations = Destinations::new(
            HashMap::new(),
            Vec::new(),
            (policy, None, true, None),
            store.pacing(),
            None,
            1.0,
        );
        (destinations, dir)
    }

    #[test]
    fn a_destination_keeps_its_endpoint_and_others_get_their_own() {
        let (destinations, _dir) = destinations();
        let a = destinations.endpoint(&target("http://a.test/"), 0).unwrap();
        let again = destinations.endpoint(&target("http://a.test/"), 1).unwrap();
        let b = destinations.endpoint(&target("http://b.test/"), 2).unwrap();
        assert!(
            Arc::ptr_eq(&a, &again),
            "one breaker and one limit per destination"
        );
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.config.name, destination_id("http://a.test/"));
        assert!(!a.config.name.contains("a.test"));
    }

    #[test]
    fn idle_destinations_are_forgotten_when_there_are_too_many() {
        let (destinations, _dir) = destinations();
        let busy = destinations
            .endpoint(&target("http://busy.test/"), 0)
            .unwrap();
        for i in 0..MAX_DESTINATIONS + 10 {
            let now = IDLE.as_millis() as u64 + i as u64 * 1000;
            destinations
                .endpoint(&target(&format!("http://t{i}.test/")), now)
                .unwrap();
            assert!(destinations.len() <= MAX_DESTINATIONS);
        }
        let still = destinations.endpoint(&target("http://busy.test/"), u64::MAX / 2);
        assert!(Arc::ptr_eq(&busy, &still.unwrap()), "in use, so kept");
    }
}
