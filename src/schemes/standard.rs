//! Standard Webhooks (`webhook-*` headers) and Svix (`svix-*`, same cryptography):
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`, `v1,<base64>` entries separated by spaces,
//! keys are the base64 bytes after `whsec_`. Ed25519 keys (`whsk_`, `whpk_`) sign and
//! verify the asymmetric `v1a` entries ([`super::ed25519`]).

use http::HeaderName;

use ring::signature::KeyPair;

use super::crypto::{
    base64_decode_lenient, base64_encode, Algorithm, Candidates, Encoding, MacKey,
};
use super::ed25519;
use super::hmac::SecretEncoding;
use super::{matching_key, parse, Clock, Key, Message, Request, Scheme, Verified, VerifyError};

/// Most `v1a` entries of one header that are checked (each costs a verification).
const MAX_V1A: usize = 8;

/// One set of the three headers.
struct HeaderSet {
    id: HeaderName,
    timestamp: HeaderName,
    signature: HeaderName,
}

impl HeaderSet {
    fn new(prefix: &str) -> Self {
        let name = |suffix: &str| {
            HeaderName::try_from(format!("{prefix}{suffix}")).expect("valid header name")
        };
        HeaderSet {
            id: name("id"),
            timestamp: name("timestamp"),
            signature: name("signature"),
        }
    }
}

pub struct StandardWebhooks {
    /// Header sets tried in order: `svix-*` first for Svix, which also accepts
    /// unbranded `webhook-*` headers like its official libraries do.
    sets: Vec<HeaderSet>,
}

impl StandardWebhooks {
    pub fn standard() -> Self {
        StandardWebhooks {
            sets: vec![HeaderSet::new("webhook-")],
        }
    }

    pub fn svix() -> Self {
        StandardWebhooks {
            sets: vec![HeaderSet::new("svix-"), HeaderSet::new("webhook-")],
        }
    }
}

impl Scheme for StandardWebhooks {
    fn id_header(&self) -> Option<&str> {
        self.sets.first().map(|set| set.id.as_str())
    }

    fn key(&self, secret: &str) -> Result<Key, String> {
        if secret.starts_with(ed25519::PRIVATE_PREFIX) {
            return Ok(Key::Ed25519Private(std::sync::Arc::new(
                ed25519::signing_key(secret)?,
            )));
        }
        if secret.starts_with(ed25519::PUBLIC_PREFIX) {
            return Ok(Key::Ed25519Public(ed25519::verifying_key(secret)?));
        }
        let bytes = SecretEncoding::Base64.key_bytes(secret).map_err(|_| {
            "expected whsec_ followed by base64 (as the provider shows it)".to_string()
        })?;
        if bytes.is_empty() {
            return Err("secret is empty".into());
        }
        Ok(Key::Mac(MacKey::new(Algorithm::Sha256, &bytes)))
    }

    fn sign(&self, keys: &[Key], message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        let timestamp = message.timestamp.to_string();
        let parts: [&[u8]; 5] = [
            message.id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            message.body,
        ];
        let signatures: Vec<String> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Mac(mac) => Some(format!("v1,{}", base64_encode(mac.sign(&parts).as_ref()))),
                Key::Ed25519Private(pair) => Some(format!(
                    "v1a,{}",
                    base64_encode(pair.sign(&parts.concat()).as_ref())
                )),
                Key::Ed25519Public(_)
                | Key::Token(_)
                | Key::EcdsaPrivate(_)
                | Key::EcdsaPublic(_) => None,
            })
            .collect();
        if signatures.is_empty() {
            return Err(VerifyError::InvalidSignature); // only public keys: nothing signs
        }
        let set = &self.sets[0];
        Ok(vec![
            (set.id.to_string(), message.id.to_string()),
            (set.timestamp.to_string(), timestamp),
            (set.signature.to_string(), signatures.join(" ")),
        ])
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let headers = request.headers;
        // The first set whose signature header is present decides all three headers.
        let set = match self.sets.as_slice() {
            [only] => only,
            sets => sets
                .iter()
                .find(|set| headers.contains_key(&set.signature))
                .unwrap_or(&sets[0]),
        };
        let signature = parse::signature(headers, &set.signature)?;
        let id = parse::required(headers, &set.id)?;
        let timestamp_text = parse::required(headers, &set.timestamp)?;
        let timestamp = parse::timestamp(timestamp_text)?;
        clock.check(timestamp)?;

        let mut candidates = Candidates::default();
        let mut asymmetric = Vec::new();
        for entry in signature.split(' ').filter(|e| !e.is_empty()) {
            let (version, value) = entry.split_once(',').ok_or_else(|| {
                VerifyError::malformed(format!(
                    "entry {:?} is not version,signature",
                    parse::truncate(entry)
                ))
            })?;
            if version == "v1" {
                let tag = Encoding::Base64
                    .decode_tag(value)
                    .map_err(VerifyError::malformed)?;
                candidates.push(tag).map_err(VerifyError::malformed)?;
            } else if version == "v1a" && asymmetric.len() < MAX_V1A {
                match base64_decode_lenient(value) {
                    Ok(sig) if sig.len() == 64 => asymmetric.push(sig),
                    _ => {
                        return Err(VerifyError::malformed(
                            "a v1a signature is 64 bytes of base64",
                        ))
                    }
                }
            }
        }
        if candidates.as_slice().is_empty() && asymmetric.is_empty() {
            return Err(VerifyError::malformed("no v1 or v1a signature"));
        }
        let parts: [&[u8]; 5] = [
            id.as_bytes(),
            b".",
            timestamp_text.as_bytes(),
            b".",
            request.body,
        ];
        let index = matching_key(keys, &parts, candidates.as_slice())
            .or_else(|| {
                keys.iter().position(|key| {
                    let public = match key {
                        Key::Ed25519Public(public) => public.as_slice(),
                        Key::Ed25519Private(pair) => pair.public_key().as_ref(),
                        _ => return false,
                    };
                    asymmetric
                        .iter()
                        .any(|sig| ed25519::verify(public, &parts, sig))
                })
            })
            .ok_or(VerifyError::InvalidSignature)?;
        Ok(Verified {
            secret_index: index,
            id: Some(id.to_string()),
            timestamp: Some(timestamp),
            signed_id: true,
        })
    }
}
