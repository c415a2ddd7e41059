//! Webhook signature schemes: one small, exact implementation per real provider format,
//! shared by the inbound side (verify) and the outbound side (sign).
//!
//! Everything here is a pure function over bytes: no I/O, and the clock is a parameter.
//! A scheme is built once from a [`SchemeSpec`] and its secrets become ready keys
//! ([`Keys`]), so a request costs one HMAC per secret tried and no copy of the body.

pub mod crypto;
mod ecdsa_preset;
pub mod ed25519;
mod ed25519_preset;
mod hmac;
mod key_signed;
mod parse;
pub mod presets;
mod standard;
mod stripe_like;
mod token;
mod twilio;

use std::fmt;
use std::time::Duration;

use http::HeaderMap;

pub use hmac::{HmacOptions, SecretEncoding, Template};
pub use parse::TimestampFormat;
use presets::Recipe;
pub use presets::SCHEME_NAMES;

/// Default replay window for schemes whose signatures carry a timestamp.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The parts of a received request a scheme may look at.
pub struct Request<'a> {
    pub method: &'a str,
    /// The full URL the sender signed (Twilio, Square, `{url}` templates).
    pub url: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What to sign: fixed once per message and reused on every retry.
pub struct Message<'a> {
    pub id: &'a str,
    /// Unix seconds.
    pub timestamp: u64,
    pub method: &'a str,
    pub url: Option<&'a str>,
    pub body: &'a [u8],
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Which configured secret matched (0-based).
    pub secret_index: usize,
    /// The delivery id, when the scheme carries one.
    pub id: Option<String>,
    /// The signed timestamp (unix seconds), when the scheme carries one.
    pub timestamp: Option<u64>,
    /// Whether the signature covers `id`: then a replay cannot come with another id.
    pub signed_id: bool,
}

/// Why a request failed verification. [`VerifyError::code`] is a stable API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing signature header {header}")]
    MissingSignature { header: String },
    #[error("missing header {header}")]
    MissingHeader { header: String },
    #[error("header {header} appears more than once")]
    DuplicateHeader { header: String },
    /// A header the scheme reads holds bytes outside visible ASCII (raw UTF-8, say).
    #[error("header {header} is not visible ASCII text (percent-encode or base64 what is not)")]
    UnreadableHeader { header: String },
    #[error("malformed signature: {detail}")]
    MalformedSignature { detail: String },
    #[error("malformed timestamp: {detail}")]
    MalformedTimestamp { detail: String },
    #[error("timestamp is {}, more than the {tolerance}s tolerance", skew(*timestamp, *now))]
    TimestampOutOfTolerance {
        timestamp: u64,
        now: u64,
        tolerance: u64,
    },
    #[error("signature does not match any configured secret")]
    InvalidSignature,
    #[error("this scheme signs the request URL, but none is known")]
    MissingUrl,
}

/// How far a timestamp is from now, in words.
fn skew(timestamp: u64, now: u64) -> String {
    if timestamp < now {
        format!("{}s old", now - timestamp)
    } else {
        format!("{}s in the future", timestamp - now)
    }
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature { .. } => "missing_signature",
            VerifyError::MissingHeader { .. } => "missing_header",
            VerifyError::DuplicateHeader { .. } => "duplicate_header",
            VerifyError::UnreadableHeader { .. } => "unreadable_header",
            VerifyError::MalformedSignature { .. } => "malformed_signature",
            VerifyError::MalformedTimestamp { .. } => "malformed_timestamp",
            VerifyError::TimestampOutOfTolerance { .. } => "timestamp_out_of_tolerance",
            VerifyError::InvalidSignature => "invalid_signature",
            VerifyError::MissingUrl => "missing_url",
        }
    }

    /// The HTTP status a receiver answers with: 400 for a request that cannot be read, 401
    /// for one that is not proven authentic.
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::UnreadableHeader { .. } => 400,
            _ => 401,
        }
    }

    fn malformed(detail: impl Into<String>) -> Self {
        VerifyError::MalformedSignature {
            detail: detail.into(),
        }
    }
}

/// The clock and the replay window, passed in so tests and callers control time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Unix seconds.
    pub now: u64,
    pub tolerance: Duration,
}

impl Clock {
    /// Rejects timestamps too old and too far in the future (Standard Webhooks and
    /// slack_sdk do both; Stripe's and Bolt's SDKs only the former; hookgate is strict).
    pub fn check(&self, timestamp: u64) -> Result<(), VerifyError> {
        let tolerance = self.tolerance.as_secs();
        if timestamp.abs_diff(self.now) > tolerance {
            return Err(VerifyError::TimestampOutOfTolerance {
                timestamp,
                now: self.now,
                tolerance,
            });
        }
        Ok(())
    }
}

/// A configured secret in the form a scheme needs it.
#[derive(Clone)]
pub enum Key {
    Mac(crypto::MacKey),
    /// Standard Webhooks `v1a`: a private key signs (and verifies), a public key verifies.
    Ed25519Private(std::sync::Arc<ring::signature::Ed25519KeyPair>),
    Ed25519Public(Vec<u8>),
    /// ECDSA P-256 (SendGrid): a PKCS#8 private key signs, the public point verifies.
    EcdsaPrivate(std::sync::Arc<ring::signature::EcdsaKeyPair>),
    EcdsaPublic(Vec<u8>),
    /// Static credentials compared as they are (bearer tokens, basic `user:pass`, GitLab tokens).
    Token(Vec<u8>),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// The index of the first key whose HMAC of `parts` equals any of the received tags.
fn matching_key<T: AsRef<[u8]>>(keys: &[Key], parts: &[&[u8]], received: &[T]) -> Option<usize> {
    keys.iter().position(|key| {
        let Key::Mac(mac) = key else { return false };
        let expected = mac.sign(parts);
        received
            .iter()
            .any(|tag| crypto::ct_eq(expected.as_ref(), tag.as_ref()))
    })
}

/// One signature scheme. Implementations are pure and cheap to share.
pub trait Scheme: Send + Sync {
    /// Turns a configured secret into key material; the error says what is wrong with it
    /// (never the secret itself).
    fn key(&self, secret: &str) -> Result<Key, String>;

    /// The headers that sign `message`, one signature per key where the format allows
    /// several (otherwise the first key signs).
    fn sign(&self, keys: &[Key], message: &Message) -> Result<Vec<(String, String)>, VerifyError>;

    /// Checks a received request against every key.
    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        clock: &Clock,
    ) -> Result<Verified, VerifyError>;

    /// Header names that carry static credentials, to strip before forwarding.
    fn credential_headers(&self) -> &'static [&'static str] {
        &[]
    }

    /// The header that carries the sender's delivery id, if the scheme has one.
    fn id_header(&self) -> Option<&str> {
        None
    }
}

/// A scheme as configured: a name and, for `hmac`, its options.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemeSpec {
    Named(String),
    Hmac(HmacOptions),
}

impl SchemeSpec {
    /// Whether the scheme signs the request URL, which callers then have to supply.
    pub fn signs_url(&self) -> bool {
        match self {
            SchemeSpec::Named(name) => presets::find(name).is_some_and(|p| p.signs_url()),
            SchemeSpec::Hmac(options) => options.template.uses_url(),
        }
    }
}

/// Builds the scheme a spec names.
pub fn build(spec: &SchemeSpec) -> Result<Box<dyn Scheme>, String> {
    let scheme: Box<dyn Scheme> = match spec {
        SchemeSpec::Hmac(options) => Box::new(hmac::HmacScheme::new(options.clone())?),
        SchemeSpec::Named(name) => match name.as_str() {
            "standard-webhooks" => Box::new(standard::StandardWebhooks::standard()),
            "svix" => Box::new(standard::StandardWebhooks::svix()),
            "stripe" => Box::new(stripe_like::KeyValueScheme::stripe()),
            "paddle" => Box::new(stripe_like::KeyValueScheme::paddle()),
            "twilio" => Box::new(twilio::Twilio),
            "gitlab" => Box::new(token::TokenScheme::gitlab()),
            "bearer" => Box::new(token::TokenScheme::bearer()),
            "basic" => Box::new(token::TokenScheme::basic()),
            "hmac" => {
                return Err(
                    "scheme hmac needs its options (header, algorithm, encoding, ...)".into(),
                )
            }
            other => match presets::find(other).map(|p| &p.recipe) {
                Some(Recipe::Alias(target)) => {
                    return build(&SchemeSpec::Named(target.to_string()))
                }
                Some(Recipe::Hmac(h)) => Box::new(hmac::HmacScheme::new(HmacOptions::preset(h))?),
                Some(Recipe::KeyValue(kv)) => Box::new(stripe_like::KeyValueScheme::preset(kv)),
                Some(Recipe::Token { header }) => Box::new(token::TokenScheme::in_header(header)),
                Some(Recipe::Ed25519(e)) => Box::new(ed25519_preset::Ed25519Scheme::preset(e)),
                Some(Recipe::EcdsaP256(e)) => Box::new(ecdsa_preset::EcdsaScheme::preset(e)),
                Some(Recipe::Own { .. }) | None => {
                    return Err(format!(
                        "unknown scheme {other:?} (known: {}; `hookgate schemes list` shows them)",
                        SCHEME_NAMES.join(", ")
                    ))
                }
            },
        },
    };
    Ok(scheme)
}

/// A scheme with its keys, ready to verify or sign.
pub struct Verifier {
    scheme: Box<dyn Scheme>,
    keys: Vec<Key>,
    tolerance: Duration,
}

impl Verifier {
    /// Builds the scheme and turns every secret into a key; the error names the secret by index.
    pub fn new(
        spec: &SchemeSpec,
        secrets: &[&str],
        tolerance: Option<Duration>,
    ) -> Result<Self, String> {
        let scheme = build(spec)?;
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| scheme.key(s).map_err(|e| format!("secret #{i}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("at least one secret is needed".into());
        }
        Ok(Verifier {
            scheme,
            keys,
            tolerance: tolerance.unwrap_or(DEFAULT_TOLERANCE),
        })
    }

    pub fn verify(&self, request: &Request, now: u64) -> Result<Verified, VerifyError> {
        let clock = Clock {
            now,
            tolerance: self.tolerance,
        };
        self.scheme.verify(&self.keys, request, &clock)
    }

    pub fn sign(&self, message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        self.scheme.sign(&self.keys, message)
    }

    pub fn credential_headers(&self) -> &'static [&'static str] {
        self.scheme.credential_headers()
    }

    pub fn id_header(&self) -> Option<&str> {
        self.scheme.id_header()
    }
}
