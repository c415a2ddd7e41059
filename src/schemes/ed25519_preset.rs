//! Providers that sign with Ed25519 over a timestamp and the body (Discord, Telnyx): the
//! receiver holds the provider's public key, in the provider's encoding. A `whsk_` private
//! key (see [`super::ed25519`]) signs the same way, for `hookgate sign` and the tests.

use super::crypto::{base64_decode_lenient, Encoding};
use super::ed25519;
use super::key_signed::{verified, KeySigned};
use super::presets::Ed25519;
use super::{Clock, Key, Message, Request, Scheme, Verified, VerifyError};

pub struct Ed25519Scheme {
    recipe: &'static Ed25519,
    headers: KeySigned,
}

impl Ed25519Scheme {
    pub fn preset(recipe: &'static Ed25519) -> Self {
        Ed25519Scheme {
            recipe,
            headers: KeySigned::new(recipe.header, recipe.timestamp_header, recipe.signed),
        }
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
        self.headers.sign(message, |content| {
            Ok(self.recipe.encoding.encode(pair.sign(content).as_ref()))
        })
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let received = self.headers.read(request, clock)?;
        let signature = decode(self.recipe.encoding, received.signature)
            .filter(|s| s.len() == 64)
            .ok_or_else(|| VerifyError::malformed("expected a 64-byte Ed25519 signature"))?;
        verified(keys, received.timestamp, |key| {
            let public: &[u8] = match key {
                Key::Ed25519Public(public) => public,
                Key::Ed25519Private(pair) => ring::signature::KeyPair::public_key(&**pair).as_ref(),
                _ => return false,
            };
            ed25519::verify(public, &[&received.content], &signature)
        })
    }
}
