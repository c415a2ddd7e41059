//! Providers that sign with Ed25519 over a timestamp and the body (Discord, Telnyx): the
//! receiver holds the provider's public key, in the provider's encoding. A `whsk_` private
//! key (see [`super::ed25519`]) signs the same way, for `hookgate sign` and the tests.

use http::HeaderName;

use super::crypto::{base64_decode_lenient, Encoding};
use super::ed25519;
use super::hmac::{Part, Template};
use super::parse;
use super::presets::Ed25519;
use super::{Clock, Key, Message, Request, Scheme, Verified, VerifyError};

pub struct Ed25519Scheme {
    recipe: &'static Ed25519,
    signature: HeaderName,
    timestamp: HeaderName,
    template: Template,
}

impl Ed25519Scheme {
    pub fn preset(recipe: &'static Ed25519) -> Self {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes())
                .expect("the provider table's headers are header names (tests)")
        };
        Ed25519Scheme {
            recipe,
            signature: name(recipe.header),
            timestamp: name(recipe.timestamp_header),
            template: Template::parse(recipe.signed).expect("preset templates parse (tests)"),
        }
    }

    /// What is signed: the template with the timestamp and the body in place.
    fn content(&self, timestamp: &str, body: &[u8]) -> Vec<u8> {
        let mut content = Vec::with_capacity(body.len() + 32);
        for part in &self.template.0 {
            match part {
                Part::Literal(l) => content.extend_from_slice(l),
                Part::Timestamp => content.extend_from_slice(timestamp.as_bytes()),
                Part::Body => content.extend_from_slice(body),
                // The table's Ed25519 templates hold nothing else (tests).
                Part::Id | Part::Method | Part::Url => {}
            }
        }
        content
    }
}

/// Hex or base64 (padded or not), as the provider writes keys and signatures.
fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Hex => const_hex::decode(text).ok(),
        _ => base64_decode_lenient(text).ok(),
    }
}

impl Scheme for Ed25519Scheme {
    fn key(&self, secret: &str) -> Result<Key, String> {
        if secret.starts_with(ed25519::PRIVATE_PREFIX) {
            return Ok(Key::Ed25519Private(std::sync::Arc::new(
                ed25519::signing_key(secret)?,
            )));
        }
        match decode(self.recipe.key_encoding, secret) {
            Some(bytes) if bytes.len() == 32 => Ok(Key::Ed25519Public(bytes)),
            _ => Err(format!(
                "expected the provider's Ed25519 public key ({} of 32 bytes), or a whsk_ private key to sign with",
                match self.recipe.key_encoding {
                    Encoding::Hex => "hex",
                    _ => "base64",
                }
            )),
        }
    }

    fn sign(&self, keys: &[Key], message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        let Some(Key::Ed25519Private(pair)) = keys.first() else {
            return Err(VerifyError::malformed(
                "signing needs a whsk_ private key; the provider's public key only verifies",
            ));
        };
        let timestamp = message.timestamp.to_string();
        let signature = pair.sign(&self.content(&timestamp, message.body));
        Ok(vec![
            (
                self.signature.to_string(),
                self.recipe.encoding.encode(signature.as_ref()),
            ),
            (self.timestamp.to_string(), timestamp),
        ])
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let text = parse::signature(request.headers, &self.signature)?;
        let signature = decode(self.recipe.encoding, text)
            .filter(|s| s.len() == 64)
            .ok_or_else(|| VerifyError::malformed("expected a 64-byte Ed25519 signature"))?;
        let timestamp_text = parse::required(request.headers, &self.timestamp)?;
        let timestamp = parse::timestamp(timestamp_text)?;
        clock.check(timestamp)?;
        let content = self.content(timestamp_text, request.body);
        let index = keys
            .iter()
            .position(|key| {
                let public: &[u8] = match key {
                    Key::Ed25519Public(public) => public,
                    Key::Ed25519Private(pair) => {
                        ring::signature::KeyPair::public_key(&**pair).as_ref()
                    }
                    _ => return false,
                };
                ed25519::verify(public, &[&content], &signature)
            })
            .ok_or(VerifyError::InvalidSignature)?;
        Ok(Verified {
            secret_index: index,
            id: None,
            timestamp: Some(timestamp),
            signed_id: false,
        })
    }
}
