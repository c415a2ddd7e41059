//! A tenant's portal token: `hgp_<claims>.<mac>`, both parts base64url without padding.
//! The claims are JSON (`tenant`, `iat` in unix ms, `exp` in unix seconds, `ro`); the MAC
//! is HMAC-SHA256 under `admin.portal.signing_key` over a versioned label and the claims'
//! text, so a token signed for anything else never verifies. Revocation is not in the
//! token: the store keeps when each tenant's tokens were last revoked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::config::Secret;

const PREFIX: &str = "hgp_";
const LABEL: &[u8] = b"hookgate-portal-v1.";
/// Longer than any token hookgate makes (a 128-character tenant included).
const MAX_TOKEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub tenant: String,
    /// When it was issued, unix ms: a revocation refuses those issued at or before it.
    #[serde(rename = "iat")]
    pub issued_ms: u64,
    /// Unix seconds.
    #[serde(rename = "exp")]
    pub expires: u64,
    #[serde(rename = "ro")]
    pub read_only: bool,
}

/// Why a token was refused, before the store is asked about revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a portal token, or not signed by this hookgate's admin.portal.signing_key")]
    Invalid,
    #[error("the portal token expired: ask for a new link")]
    Expired,
}

pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(signing_key: &Secret) -> Self {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, signing_key.expose().as_bytes()),
        }
    }

    fn mac(&self, claims: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(LABEL);
        context.update(claims.as_bytes());
        context.sign()
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let json = serde_json::to_vec(claims).expect("claims always serialize");
        let claims = URL_SAFE_NO_PAD.encode(json);
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&claims).as_ref());
        format!("{PREFIX}{claims}.{mac}")
    }

    /// The token's claims, when this key signed it and it has not expired at `now_s`.
    pub fn verify(&self, token: &str, now_s: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::Invalid);
        }
        let (claims, mac) = token
            .strip_prefix(PREFIX)
            .and_then(|t| t.split_once('.'))
            .ok_or(TokenError::Invalid)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Invalid)?;
        let mut context = Vec::with_capacity(LABEL.len() + claims.len());
        context.extend_from_slice(LABEL);
        context.extend_from_slice(claims.as_bytes());
        hmac::verify(&self.key, &context, &mac).map_err(|_| TokenError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        if claims.expires <= now_s {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &str) -> Signer {
        Signer::new(&Secret::new(key.to_string()))
    }

    fn claims() -> Claims {
        Claims {
            tenant: "acme".into(),
            issued_ms: 1_000,
            expires: 2_000,
            read_only: false,
        }
    }

    #[test]
    fn a_token_verifies_under_its_key_until_it_expires() {
        let a = signer("a key of thirty-two bytes or more!");
        let token = a.issue(&claims());
        assert_eq!(a.verify(&token, 1_999), Ok(claims()));
        assert_eq!(a.verify(&token, 2_000), Err(TokenError::Expired));
        let b = signer("another key of thirty-two bytes!!");
        assert_eq!(b.verify(&token, 1_000), Err(TokenError::Invalid));
    }

    #[test]
    fn a_changed_or_malformed_token_is_invalid() {
        let a = signer("a key of thirty-two bytes or more!");
        let token = a.issue(&claims());
        let (head, mac) = token.rsplit_once('.').unwrap();
        // Another tenant's claims under the first token's MAC.
        let other = Claims {
            tenant: "globex".into(),
            ..claims()
        };
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        for bad in [
            format!("hgp_{forged_claims}.{mac}"),
            format!("{head}.{}", &mac[1..]),
            format!("{head}x.{mac}"),
            token.replace("hgp_", "hgx_"),
            head.to_string(),
            String::new(),
            "hgp_.".into(),
            "x".repeat(5000),
        ] {
            assert_eq!(a.verify(&bad, 1_000), Err(TokenError::Invalid), "{bad}");
        }
    }
}
