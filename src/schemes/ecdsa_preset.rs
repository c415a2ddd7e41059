//! Providers that sign with ECDSA P-256 and SHA-256 over a timestamp and the body (SendGrid's
//! Event Webhook): the receiver holds the provider's public key, base64 of its DER
//! SubjectPublicKeyInfo, as the provider's settings page shows it. A PKCS#8 private key
//! (base64 of its DER) signs the same way, for `hookgate sign` and the tests.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};

use super::crypto::{base64_decode_lenient, Encoding};
use super::key_signed::{verified, KeySigned};
use super::presets::EcdsaP256;
use super::{Clock, Key, Message, Request, Scheme, Verified, VerifyError};

/// The DER header of a P-256 SubjectPublicKeyInfo (RFC 5480): what precedes the 65-byte
/// uncompressed point.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

pub struct EcdsaScheme {
    recipe: &'static EcdsaP256,
    headers: KeySigned,
}

impl EcdsaScheme {
    pub fn preset(recipe: &'static EcdsaP256) -> Self {
        EcdsaScheme {
            recipe,
            headers: KeySigned::new(recipe.header, recipe.timestamp_header, recipe.signed),
        }
    }
}

impl Scheme for EcdsaScheme {
    fn key(&self, secret: &str) -> Result<Key, String> {
        let der = base64_decode_lenient(secret.trim()).map_err(|_| {
            "expected base64 of a DER P-256 public key (or of a PKCS#8 private key, to sign)"
        })?;
        if let Some(point) = der.strip_prefix(&SPKI_PREFIX[..]).filter(|p| p.len() == 65) {
            return Ok(Key::EcdsaPublic(point.to_vec()));
        }
        let algorithm = match self.recipe.der {
            true => &ECDSA_P256_SHA256_ASN1_SIGNING,
            false => &ECDSA_P256_SHA256_FIXED_SIGNING,
        };
        EcdsaKeyPair::from_pkcs8(algorithm, &der, &SystemRandom::new())
            .map(|pair| Key::EcdsaPrivate(Arc::new(pair)))
            .map_err(|_| {
                "expected base64 of a DER P-256 public key (or of a PKCS#8 private key, to sign)"
                    .into()
            })
    }

    fn sign(&self, keys: &[Key], message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        let Some(Key::EcdsaPrivate(pair)) = keys.first() else {
            return Err(VerifyError::malformed(
                "signing needs a PKCS#8 private key; the provider's public key only verifies",
            ));
        };
        self.headers.sign(message, |content| {
            pair.sign(&SystemRandom::new(), content)
                .map(|signature| Encoding::Base64.encode(signature.as_ref()))
                .map_err(|_| VerifyError::malformed("the key could not sign"))
        })
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let received = self.headers.read(request, clock)?;
        // A DER signature of P-256 is at most 72 bytes; a raw one is 64.
        let signature = base64_decode_lenient(received.signature)
            .ok()
            .filter(|s| (8..=72).contains(&s.len()))
            .ok_or_else(|| VerifyError::malformed("expected base64 of an ECDSA P-256 signature"))?;
        let algorithm = match self.recipe.der {
            true => &ECDSA_P256_SHA256_ASN1,
            false => &ECDSA_P256_SHA256_FIXED,
        };
        verified(keys, received.timestamp, |key| {
            let public: &[u8] = match key {
                Key::EcdsaPublic(point) => point,
                Key::EcdsaPrivate(pair) => ring::signature::KeyPair::public_key(&**pair).as_ref(),
                _ => return false,
            };
            UnparsedPublicKey::new(algorithm, public)
                .verify(&received.content, &signature)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemes::presets::{find, Recipe};

    fn sendgrid() -> EcdsaScheme {
        match &find("sendgrid").unwrap().recipe {
            Recipe::EcdsaP256(e) => EcdsaScheme::preset(e),
            _ => unreachable!("sendgrid is ECDSA"),
        }
    }

    #[test]
    fn only_a_p256_key_is_taken() {
        // secp256k1, the other curve ECDSA libraries default to (starkbank-ecdsa's).
        let k1 = "3056301006072a8648ce3d020106052b8104000a0342000471bf03045757acfd7d9639b8b6984523bd32e373a757d6c2fbb4df5c0ca90ee487b98db2a0993f227aafea42ba3135bcfe02d855d29a2f8d04ce800c9ff88637";
        let k1 = Encoding::Base64.encode(&const_hex::decode(k1).unwrap());
        for bad in [
            k1.as_str(),
            "",
            "not base64!",
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        ] {
            assert!(sendgrid().key(bad).is_err(), "{bad:?}");
        }
    }
}
