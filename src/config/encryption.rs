//! `store.encryption`: the keys the store seals secrets with. The first key seals; every
//! key opens, so an old key stays listed until nothing sealed with it is left.

use std::fmt;

use base64::Engine;

/// `store.encryption: { keys: [...] }`.
#[derive(Debug, Clone)]
pub struct StoreEncryption {
    /// Never empty; the first seals.
    pub keys: Vec<StoreKey>,
}

/// 32 random bytes (AES-256), given as base64 (`openssl rand -base64 32`).
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey(pub [u8; 32]);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    /// A key from its base64 form (standard or URL-safe alphabet, padded or not). The
    /// message never repeats what it was given.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        let bytes = engines
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or("not base64: give 32 random bytes as base64 (openssl rand -base64 32)")?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "{} bytes once decoded; a key is 32 (openssl rand -base64 32)",
                bytes.len()
            )
        })?;
        Ok(StoreKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_32_bytes_of_base64_and_errors_do_not_repeat_it() {
        // 32 bytes of 0x01, encoded with Python's base64 module.
        let key = StoreKey::parse("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
        assert_eq!(key.0, [1u8; 32]);
        assert!(StoreKey::parse("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE").is_ok());
        let short = StoreKey::parse("c2hvcnQta2V5").unwrap_err();
        assert!(
            short.contains("9 bytes") && !short.contains("c2hvcnQta2V5"),
            "{short}"
        );
        let bad = StoreKey::parse("not a key!").unwrap_err();
        assert!(!bad.contains("not a key!"), "{bad}");
    }
}
