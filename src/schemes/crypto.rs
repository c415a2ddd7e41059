//! The primitives every scheme is built from: keyed HMAC over several parts (no copy of
//! the body), tag encodings, and constant-time comparison.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::hmac;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(format!("expected sha1, sha256 or sha512, found {other:?}")),
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
            Algorithm::Sha512 => hmac::HMAC_SHA512,
        }
    }

    pub fn tag_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
    Base64Url,
}

impl Encoding {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "hex" => Ok(Encoding::Hex),
            "base64" => Ok(Encoding::Base64),
            "base64url" => Ok(Encoding::Base64Url),
            other => Err(format!(
                "expected hex, base64 or base64url, found {other:?}"
            )),
        }
    }

    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Hex => const_hex::encode(bytes),
            Encoding::Base64 => STANDARD.encode(bytes),
            // Without padding, as JWS and the providers that use base64url write it;
            // decode_tag takes either.
            Encoding::Base64Url => URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// Decodes a received tag into a stack buffer (no allocation on the request path).
    pub fn decode_tag(self, text: &str) -> Result<TagBuf, String> {
        let mut tag = TagBuf::default();
        match self {
            Encoding::Hex => {
                if text.len() % 2 == 1 {
                    return Err(format!("odd-length hex ({} characters)", text.len()));
                }
                let len = text.len() / 2;
                if len > MAX_TAG {
                    return Err(format!("{len} bytes is longer than any signature"));
                }
                const_hex::decode_to_slice(text, &mut tag.bytes[..len])
                    .map_err(|_| "not hex".to_string())?;
                tag.len = len;
            }
            Encoding::Base64 | Encoding::Base64Url => {
                let engine = match self {
                    Encoding::Base64 => &STANDARD,
                    _ => &URL_SAFE,
                };
                // Base64 of 64 bytes is 88 characters; longer cannot be a tag.
                if text.len() > 88 {
                    return Err(format!(
                        "{} characters is longer than any signature",
                        text.len()
                    ));
                }
                tag.len = engine
                    .decode_slice(text, &mut tag.bytes)
                    .or_else(|_| match self {
                        Encoding::Base64Url => URL_SAFE_NO_PAD.decode_slice(text, &mut tag.bytes),
                        _ => Err(base64::DecodeSliceError::OutputSliceTooSmall),
                    })
                    .map_err(|_| {
                        format!(
                            "bad {}",
                            if self == Encoding::Base64 {
                                "base64"
                            } else {
                                "base64url"
                            }
                        )
                    })?;
            }
        }
        Ok(tag)
    }
}

/// Longest tag any algorithm here produces (SHA-512).
const MAX_TAG: usize = 64;

/// A decoded signature, held on the stack.
#[derive(Clone, Copy)]
pub struct TagBuf {
    bytes: [u8; MAX_TAG],
    len: usize,
}

/// Most signatures one header may carry (one per live secret in practice); more is
/// refused so a request cannot make hookgate compare without end.
const MAX_CANDIDATES: usize = 8;

/// The signatures a header carries, decoded on the stack.
#[derive(Default)]
pub struct Candidates {
    tags: [TagBuf; MAX_CANDIDATES],
    len: usize,
}

impl Candidates {
    pub fn push(&mut self, tag: TagBuf) -> Result<(), String> {
        let slot = self
            .tags
            .get_mut(self.len)
            .ok_or_else(|| format!("more than {MAX_CANDIDATES} signatures"))?;
        *slot = tag;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[TagBuf] {
        &self.tags[..self.len]
    }
}

impl Default for TagBuf {
    fn default() -> Self {
        TagBuf {
            bytes: [0; MAX_TAG],
            len: 0,
        }
    }
}

impl AsRef<[u8]> for TagBuf {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A secret turned into a ready HMAC key (the key pads are computed once, not per request).
#[derive(Clone)]
pub struct MacKey {
    key: hmac::Key,
    algorithm: Algorithm,
}

impl MacKey {
    pub fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        MacKey {
            key: hmac::Key::new(algorithm.ring(), secret),
            algorithm,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// HMAC over the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> hmac::Tag {
        self.sign_with(|context| {
            for part in parts {
                context.update(part);
            }
        })
    }

    /// HMAC over whatever `feed` passes to the context, piece by piece.
    pub fn sign_with(&self, feed: impl FnOnce(&mut hmac::Context)) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        feed(&mut context);
        context.sign()
    }

    /// Constant-time check of a received tag against the HMAC of `parts`.
    pub fn verify(&self, parts: &[&[u8]], received: &[u8]) -> bool {
        ct_eq(self.sign(parts).as_ref(), received)
    }
}

/// Constant-time equality; only the length may leak.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub fn sha256_hex(data: &[u8]) -> String {
    const_hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// Base64 as the providers' own libraries read secrets: padding optional, stray trailing
/// bits ignored (Python's `b64decode` behaviour).
pub fn base64_decode_lenient(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(text)
}

pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_are_precise() {
        let err = |e: Encoding, t: &str| e.decode_tag(t).err().unwrap();
        assert_eq!(err(Encoding::Hex, "abc"), "odd-length hex (3 characters)");
        assert_eq!(err(Encoding::Hex, "zz"), "not hex");
        assert_eq!(err(Encoding::Base64, "***"), "bad base64");
        assert_eq!(
            err(Encoding::Hex, &"00".repeat(65)),
            "65 bytes is longer than any signature"
        );
        assert_eq!(
            Encoding::Hex.decode_tag("0aFF").unwrap().as_ref(),
            &[0x0a, 0xff]
        );
        assert_eq!(
            Encoding::Base64Url.decode_tag("_-8").unwrap().as_ref(),
            &[0xff, 0xef]
        );
    }

    #[test]
    fn multipart_hmac_equals_one_shot() {
        let key = MacKey::new(Algorithm::Sha256, b"k");
        let whole = key.sign(&[b"a.b.c"]);
        assert!(key.verify(&[b"a", b".b.", b"c"], whole.as_ref()));
        assert!(!key.verify(&[b"a", b".b.", b"d"], whole.as_ref()));
    }
}
