//! Standard Webhooks' asymmetric signatures (`v1a`): Ed25519 over `{id}.{timestamp}.{body}`.
//! A sender keeps the private key (`whsk_` and base64 of the 32-byte seed followed by the
//! 32-byte public key, libsodium's layout; a bare seed is read too) and gives receivers the
//! public key (`whpk_` and base64 of its 32 bytes).

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use super::crypto::{base64_decode_lenient, base64_encode};

pub const PRIVATE_PREFIX: &str = "whsk_";
pub const PUBLIC_PREFIX: &str = "whpk_";

/// A new private key, `whsk_...`.
pub fn generate() -> String {
    use ring::rand::SecureRandom;
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .expect("the system random source is available");
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are a seed");
    let mut both = seed.to_vec();
    both.extend_from_slice(pair.public_key().as_ref());
    format!("{PRIVATE_PREFIX}{}", base64_encode(&both))
}

/// The key pair a `whsk_` private key holds.
pub fn signing_key(private: &str) -> Result<Ed25519KeyPair, String> {
    let expected = || "expected whsk_ followed by base64 of an Ed25519 key".to_string();
    let bytes = private
        .strip_prefix(PRIVATE_PREFIX)
        .and_then(|b64| base64_decode_lenient(b64).ok())
        .ok_or_else(expected)?;
    match bytes.len() {
        32 => Ed25519KeyPair::from_seed_unchecked(&bytes).map_err(|_| expected()),
        64 => Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..])
            .map_err(|_| "the key's public half does not match its seed".to_string()),
        _ => Err(expected()),
    }
}

/// The `whpk_` public key of a `whsk_` private key.
pub fn public_key(private: &str) -> Result<String, String> {
    let pair = signing_key(private)?;
    Ok(format!(
        "{PUBLIC_PREFIX}{}",
        base64_encode(pair.public_key().as_ref())
    ))
}

/// The 32 bytes of a `whpk_` public key.
pub fn verifying_key(public: &str) -> Result<Vec<u8>, String> {
    public
        .strip_prefix(PUBLIC_PREFIX)
        .and_then(|b64| base64_decode_lenient(b64).ok())
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| "expected whpk_ followed by base64 of a 32-byte Ed25519 public key".into())
}

/// Whether `signature` signs `parts` (concatenated) for `public`.
pub fn verify(public: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public)
        .verify(&parts.concat(), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_what_its_public_key_verifies() {
        let private = generate();
        let pair = signing_key(&private).unwrap();
        let public = verifying_key(&public_key(&private).unwrap()).unwrap();
        let signature = pair.sign(b"msg_1.1700000000.{}");
        assert!(verify(
            &public,
            &[b"msg_1.", b"1700000000.{}"],
            signature.as_ref()
        ));
        assert!(!verify(
            &public,
            &[b"msg_1.1700000000.{ }"],
            signature.as_ref()
        ));
        assert!(signing_key("whsk_AAAA").is_err());
        assert!(verifying_key("whsec_AAAA").is_err());
    }
}
