//! Dedupe stage: a delivery id is forwarded once. It runs after verification, so forged
//! requests cannot poison ids. Semantics:
//! - first sight: claimed, forwarded; a 2xx from the app records it as done for `ttl`,
//!   anything else releases the claim so the provider's retry goes through;
//! - done: answered at once with the recorded status and `Hookgate-Duplicate: true`;
//! - in flight: 409 with `Retry-After`.
//!
//! A signed request whose id the signature does not cover (GitHub, Shopify, Rejento and
//! every body-only scheme) also claims its signed content: a captured body and signature
//! replayed under fresh ids is a duplicate of the first, not a new delivery.

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;

use std::time::Duration;

use crate::config::{DedupeConfig, IdSource};
use crate::error_response::ErrorResponse;
use crate::metrics::METRICS;
use crate::schemes::crypto::sha256_hex;
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
    let id = match &config.id {
        IdSource::Header(name) => header
            .headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        IdSource::Json(pointer) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|json| match json.pointer(pointer)? {
                serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
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
        let mut content = verified
            .timestamp
            .map_or_else(Vec::new, |t| format!("{t}:").into_bytes());
        content.extend_from_slice(body);
        keys.push(format!("{route}:content:{}", sha256_hex(&content)));
    }
    keys
}

/// What claiming a request's keys found.
pub enum Claimed {
    /// Every key is the caller's now; complete or release them together.
    All(ClaimedKeys),
    /// One key was delivered before or is in flight; nothing stays claimed.
    Seen(Claim),
}

/// Keys claimed by one request.
pub struct ClaimedKeys {
    keys: Vec<String>,
    ttl: Duration,
}

/// Claims every key, or none: on a key seen before, the ones claimed so far are released.
pub async fn claim(
    store: &dyn DedupeStore,
    keys: Vec<String>,
    lease: Duration,
    ttl: Duration,
) -> Result<Claimed, StoreError> {
    let mut claimed = ClaimedKeys {
        keys: Vec::with_capacity(keys.len()),
        ttl,
    };
    for key in keys {
        match store.claim(&key, lease).await {
            Ok(Claim::Claimed) => claimed.keys.push(key),
            Ok(seen) => {
                claimed.release(store).await;
                return Ok(Claimed::Seen(seen));
            }
            Err(e) => {
                claimed.release(store).await;
                return Err(e);
            }
        }
    }
    Ok(Claimed::All(claimed))
}

impl ClaimedKeys {
    /// Records the delivery as done with the app's `status`.
    pub async fn complete(&self, store: &dyn DedupeStore, status: u16) {
        for key in &self.keys {
            if let Err(e) = store.complete(key, status, self.ttl).await {
                METRICS.dedupe_store_errors.inc();
                tracing::error!(error = %e, "could not record a delivered id");
            }
        }
    }

    /// Lets the sender's retry through.
    pub async fn release(&self, store: &dyn DedupeStore) {
        for key in &self.keys {
            if let Err(e) = store.release(key).await {
                METRICS.dedupe_store_errors.inc();
                tracing::error!(error = %e, "could not release a claimed id");
            }
        }
    }
}

/// Answers a duplicate of a delivered id with the status the app gave the first time.
pub async fn answer_duplicate(
    session: &mut ServerSession,
    status: u16,
    id: &str,
) -> pingora::Result<()> {
    let no_body = matches!(status, 204 | 304) || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else {
        serde_json::to_vec(&serde_json::json!({ "duplicate": true, "delivery_id": id }))
            .expect("a JSON object of strings always serializes")
    };
    let mut response = ResponseHeader::build(status, Some(3))?;
    response.insert_header("Hookgate-Duplicate", "true")?;
    if !no_body {
        response.insert_header("Content-Type", "application/json")?;
        response.insert_header("Content-Length", body.len().to_string())?;
    }
    session.write_response_header(Box::new(response)).await?;
    session.write_response_body(Bytes::from(body), true).await
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
}
