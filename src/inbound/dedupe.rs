//! Dedupe stage: a delivery id is forwarded once. It runs after verification, so forged
//! requests cannot poison ids. Semantics:
//! - first sight: claimed, forwarded; a 2xx from the app records it as done for `ttl`,
//!   anything else releases the claim so the provider's retry goes through;
//! - done: answered at once with the recorded status and `Hookgate-Duplicate: true`;
//! - in flight: 409 with `Retry-After`;
//! - the store failed: 503 with `Retry-After`, or forwarded without dedupe when the route
//!   fails open.
//!
//! A signed request whose id the signature does not cover (GitHub, Shopify, Rejento and
//! every body-only scheme) also claims its signed content: a captured body and signature
//! replayed under fresh ids is a duplicate of the first, not a new delivery.

use std::sync::Arc;
use std::time::Duration;

use pingora::http::RequestHeader;

use super::client::{Client, Gone};
use super::rate_limit::STORE_RETRY_AFTER;
use crate::config::{DedupeConfig, IdSource, OnStoreError};
use crate::error_response::ErrorResponse;
use crate::header_text::header_or_400;
use crate::logging::Throttle;
use crate::metrics::METRICS;
use crate::schemes::Verified;
use crate::store::{Claim, DedupeStore, StoreError};

/// Seconds a sender should wait before retrying a delivery that is in flight.
pub const IN_FLIGHT_RETRY_AFTER: &str = "10";

/// The delivery id of a request, from the route's configured source.
pub fn delivery_id(
    config: &DedupeConfig,
    header: &RequestHeader,
    body: &[u8],
    verified: Option<&Verified>,
) -> Result<String, ErrorResponse> {
    // An id that is there but unreadable is refused as such, never taken as missing.
    let invalid = |why: String| ErrorResponse::new(400, "invalid_delivery_id", why);
    let id = match &config.id {
        IdSource::Header(name) => {
            header_or_400(&header.headers, name, "invalid_delivery_id")?.map(str::to_string)
        }
        IdSource::Json(pointer) => {
            let json = serde_json::from_slice::<serde_json::Value>(body).map_err(|_| {
                invalid(format!(
                    "this route dedupes on the JSON body at {pointer}, and the body is not JSON"
                ))
            })?;
            match json.pointer(pointer) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                Some(_) => {
                    return Err(invalid(format!(
                        "the body's {pointer} is not a delivery id (a non-empty string or a number)"
                    )))
                }
            }
        }
        IdSource::Scheme => verified.and_then(|v| v.id.clone()),
    };
    id.ok_or_else(|| {
        let source = match &config.id {
            IdSource::Header(name) => format!("header {name}"),
            IdSource::Json(pointer) => format!("JSON body at {pointer}"),
            IdSource::Scheme => "signature scheme's id".to_string(),
        };
        ErrorResponse::new(
            400,
            "missing_delivery_id",
            format!("this route dedupes on the {source}, which the request lacks"),
        )
    })
}

/// The keys one request claims: its delivery id, and its signed content when the id is
/// not signed.
pub fn keys(route: &str, id: &str, body: &[u8], verified: Option<&Verified>) -> Vec<String> {
    let mut keys = vec![format!("{route}:{id}")];
    if let Some(verified) = verified.filter(|v| !v.signed_id) {
        // The timestamp, when signed, tells a replay from the same body sent again later.
        // Hashed in parts: the body is not copied to be prefixed.
        let mut content = ring::digest::Context::new(&ring::digest::SHA256);
        if let Some(timestamp) = verified.timestamp {
            content.update(format!("{timestamp}:").as_bytes());
        }
        content.update(body);
        let digest = const_hex::encode(content.finish());
        keys.push(format!("{route}:content:{digest}"));
    }
    keys
}

/// One route's dedupe stage, built with the route.
pub struct RouteDedupe {
    route: &'static str,
    config: DedupeConfig,
    store: Arc<dyn DedupeStore>,
    /// How long a claim may stay in flight: longer than any delivery, so a crashed
    /// delivery cannot block its id for the whole window.
    lease: Duration,
    on_store_error: OnStoreError,
    /// A full or failing store fails every request: one log line a second says so.
    store_errors_logged: Throttle,
    /// A replay flood is duplicates only: one log line a second, with the count.
    duplicates_logged: Throttle,
}

/// What the dedupe stage decided for one request.
pub enum Admission {
    /// Forward it. The guard holds its claim (none when the store failed and the route
    /// fails open).
    Forward(Option<DeliveryGuard>),
    /// Delivered before: answer with the status the app gave then.
    Duplicate { status: u16, id: String },
    /// No delivery id (400), in flight (409), or the store failed (503).
    Refuse(ErrorResponse),
}

impl RouteDedupe {
    pub fn new(
        route: &'static str,
        config: DedupeConfig,
        store: Arc<dyn DedupeStore>,
        lease: Duration,
        on_store_error: OnStoreError,
    ) -> Self {
        RouteDedupe {
            store_errors_logged: Throttle::default(),
            duplicates_logged: Throttle::default(),
            route,
            config,
            store,
            lease,
            on_store_error,
        }
    }

    /// Claims the request's keys (every one, or none), or says why it is not forwarded.
    pub async fn admit(
        &self,
        header: &RequestHeader,
        body: &[u8],
        verified: Option<&Verified>,
    ) -> Admission {
        let route = self.route;
        let id = match delivery_id(&self.config, header, body, verified) {
            Ok(id) => id,
            Err(answer) => return Admission::Refuse(answer),
        };
        let keys = keys(route, &id, body, verified);
        match self.store.claim_all(&keys, self.lease).await {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Done { status }) => {
                if let Some(skipped) = self.duplicates_logged.allow(crate::clock::now_ms()) {
                    tracing::info!(route, delivery_id = %id, status, skipped, "duplicate answered from the dedupe window (logged at most once a second; all are counted in hookgate_inbound_requests_total)");
                }
                return Admission::Duplicate { status, id };
            }
            Ok(Claim::InFlight) => {
                return Admission::Refuse(
                    ErrorResponse::new(
                        409,
                        "delivery_in_flight",
                        format!("delivery {id} is being delivered right now"),
                    )
                    .with_header("Retry-After", IN_FLIGHT_RETRY_AFTER),
                );
            }
            Err(e) => {
                METRICS.dedupe_store_errors.inc();
                return self.store_failed(&id, &e);
            }
        }
        let guard = DeliveryGuard {
            keys,
            ttl: self.config.ttl,
            store: self.store.clone(),
        };
        Admission::Forward(Some(guard))
    }

    fn store_failed(&self, id: &str, e: &StoreError) -> Admission {
        let route = self.route;
        let logged = self.store_errors_logged.allow(crate::clock::now_ms());
        if self.on_store_error == OnStoreError::FailOpen {
            if let Some(skipped) = logged {
                tracing::warn!(route, delivery_id = %id, error = %e, skipped, "forwarding without dedupe: the store failed and the route fails open");
            }
            return Admission::Forward(None);
        }
        if let Some(skipped) = logged {
            tracing::error!(route, error = %e, skipped, "dedupe store refused a claim");
        }
        // The store's error stays in the log: it names hosts and causes.
        let message = match e {
            StoreError::Full { .. } => "this route's dedupe window is full; retry later",
            StoreError::Unavailable(_) | StoreError::Corrupt(_) | StoreError::Sealed(_) => {
                "the dedupe store is unavailable; retry later"
            }
        };
        Admission::Refuse(
            ErrorResponse::new(503, "dedupe_unavailable", message)
                .with_header("Retry-After", STORE_RETRY_AFTER),
        )
    }
}

/// The claim on a delivery while it is forwarded. [`DeliveryGuard::finish`] records the
/// delivery as done when the app answered 2xx and releases it otherwise, so the sender's
/// retry goes through; a guard dropped unfinished (the request was cancelled) releases too.
pub struct DeliveryGuard {
    keys: Vec<String>,
    ttl: Duration,
    store: Arc<dyn DedupeStore>,
}

impl DeliveryGuard {
    /// The app answered `status` (`None`: no answer): a 2xx completes the delivery.
    pub async fn finish(mut self, status: Option<u16>) {
        match status {
            Some(status) if (200..300).contains(&status) => {
                let keys = std::mem::take(&mut self.keys);
                if let Err(e) = self.store.complete_all(&keys, status, self.ttl).await {
                    METRICS.dedupe_store_errors.inc();
                    tracing::error!(error = %e, "could not record a delivered id");
                }
            }
            _ => self.release().await,
        }
    }

    /// Lets the sender's retry through.
    pub async fn release(&mut self) {
        release(self.store.as_ref(), std::mem::take(&mut self.keys)).await;
    }
}

async fn release(store: &dyn DedupeStore, keys: Vec<String>) {
    for key in keys {
        if let Err(e) = store.release(&key).await {
            METRICS.dedupe_store_errors.inc();
            tracing::error!(error = %e, "could not release a claimed id");
        }
    }
}

impl Drop for DeliveryGuard {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        // Without a runtime (shutting down) the claims lapse after their lease instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, keys) = (self.store.clone(), std::mem::take(&mut self.keys));
            runtime.spawn(async move { release(store.as_ref(), keys).await });
        }
    }
}

/// Answers a duplicate of a delivered id with the status the app gave the first time.
pub async fn answer_duplicate(client: &mut Client<'_>, status: u16, id: &str) -> Result<(), Gone> {
    let no_body = matches!(status, 204 | 304) || (100..200).contains(&status);
    if no_body {
        return client
            .respond(status, &[("Hookgate-Duplicate", "true")], b"", true)
            .await;
    }
    let body = serde_json::to_vec(&serde_json::json!({ "duplicate": true, "delivery_id": id }))
        .expect("a JSON object of strings always serializes");
    let fields = [
        ("Hookgate-Duplicate", "true"),
        ("Content-Type", "application/json"),
    ];
    client.respond(status, &fields, &body, true).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(id: IdSource) -> DedupeConfig {
        DedupeConfig {
            id,
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn content_keys_are_the_sha256_of_timestamp_and_body() {
        // Kept across versions: the embedded log and Redis hold these keys for the window.
        let verified = Verified {
            secret_index: 0,
            id: None,
            timestamp: Some(1_700_000_000),
            signed_id: false,
        };
        let expected = crate::schemes::crypto::sha256_hex(b"1700000000:{\"a\":1}");
        assert_eq!(
            keys("r", "d-1", br#"{"a":1}"#, Some(&verified)),
            ["r:d-1".to_string(), format!("r:content:{expected}")]
        );
        let untimed = Verified {
            timestamp: None,
            ..verified
        };
        let expected = crate::schemes::crypto::sha256_hex(br#"{"a":1}"#);
        assert_eq!(
            keys("r", "d-1", br#"{"a":1}"#, Some(&untimed))[1],
            format!("r:content:{expected}")
        );
        let signed_id = Verified {
            signed_id: true,
            ..untimed
        };
        assert_eq!(keys("r", "d-1", b"{}", Some(&signed_id)), ["r:d-1"]);
    }

    #[test]
    fn ids_come_from_header_json_or_scheme() {
        let mut header = RequestHeader::build("POST", b"/", None).unwrap();
        header.insert_header("X-Delivery", " d-1 ").unwrap();
        let body = br#"{"event":{"id":42},"uuid":"u-9"}"#;
        assert_eq!(
            delivery_id(
                &config(IdSource::Header("x-delivery".into())),
                &header,
                body,
                None
            )
            .unwrap(),
            "d-1"
        );
        assert_eq!(
            delivery_id(
                &config(IdSource::Json("/event/id".into())),
                &header,
                body,
                None
            )
            .unwrap(),
            "42"
        );
        assert_eq!(
            delivery_id(&config(IdSource::Json("/uuid".into())), &header, body, None).unwrap(),
            "u-9"
        );
        let verified = Verified {
            secret_index: 0,
            id: Some("msg_1".into()),
            timestamp: None,
            signed_id: true,
        };
        assert_eq!(
            delivery_id(&config(IdSource::Scheme), &header, body, Some(&verified)).unwrap(),
            "msg_1"
        );
        let missing =
            delivery_id(&config(IdSource::Json("/nope".into())), &header, body, None).unwrap_err();
        assert_eq!((missing.status, missing.code), (400, "missing_delivery_id"));
    }

    fn route_dedupe(dir: &std::path::Path) -> RouteDedupe {
        let store = crate::store::open(
            &crate::config::StoreConfig::Embedded {
                path: dir.to_path_buf(),
                max_ids: 100,
            },
            None,
        )
        .unwrap();
        RouteDedupe::new(
            "r",
            config(IdSource::Header("x-delivery".into())),
            store.dedupe(1).unwrap(),
            Duration::from_secs(30),
            OnStoreError::FailClosed,
        )
    }

    async fn admit(dedupe: &RouteDedupe, id: &str) -> Admission {
        let mut header = RequestHeader::build("POST", b"/", None).unwrap();
        header.insert_header("X-Delivery", id).unwrap();
        dedupe.admit(&header, b"{}", None).await
    }

    #[tokio::test]
    async fn the_guard_completes_on_a_2xx_and_releases_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let dedupe = route_dedupe(dir.path());
        let Admission::Forward(Some(guard)) = admit(&dedupe, "a").await else {
            panic!("first sight is forwarded with a claim");
        };
        assert!(matches!(admit(&dedupe, "a").await, Admission::Refuse(r) if r.status == 409));
        guard.finish(Some(502)).await;
        let Admission::Forward(Some(guard)) = admit(&dedupe, "a").await else {
            panic!("released after a 502: the retry goes through");
        };
        guard.finish(Some(201)).await;
        assert!(matches!(
            admit(&dedupe, "a").await,
            Admission::Duplicate { status: 201, .. }
        ));
    }

    #[tokio::test]
    async fn a_guard_dropped_unfinished_releases_its_claim() {
        let dir = tempfile::tempdir().unwrap();
        let dedupe = route_dedupe(dir.path());
        let Admission::Forward(Some(guard)) = admit(&dedupe, "b").await else {
            panic!("first sight is forwarded with a claim");
        };
        drop(guard);
        for _ in 0..100 {
            if let Admission::Forward(Some(_)) = admit(&dedupe, "b").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the claim was never released");
    }
}
