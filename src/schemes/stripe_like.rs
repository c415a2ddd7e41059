//! Schemes whose one header is a list of `key=value` pairs with a timestamp and one or
//! more hex signatures: Stripe (`t=…,v1=…`), Paddle (`ts=…;h1=…`), and presets of the same
//! shape.

use http::HeaderName;

use super::crypto::{Algorithm, Candidates, Encoding, MacKey};
use super::parse::{self, TimestampFormat};
use super::{matching_key, Clock, Key, Message, Request, Scheme, Verified, VerifyError};

pub struct KeyValueScheme {
    header: HeaderName,
    separator: char,
    timestamp_key: &'static str,
    signature_key: &'static str,
    /// Between the timestamp and the body in the signed content.
    joiner: &'static [u8],
    timestamp_format: TimestampFormat,
    encoding: Encoding,
}

impl KeyValueScheme {
    /// Key: the whole `whsec_…` string as UTF-8 (not decoded); `v0` entries are ignored.
    pub fn stripe() -> Self {
        KeyValueScheme {
            header: HeaderName::from_static("stripe-signature"),
            separator: ',',
            timestamp_key: "t",
            signature_key: "v1",
            joiner: b".",
            timestamp_format: TimestampFormat::UnixSeconds,
            encoding: Encoding::Hex,
        }
    }

    /// Key: the `pdl_ntfset_…` secret as-is; any `h1` may match.
    pub fn paddle() -> Self {
        KeyValueScheme {
            header: HeaderName::from_static("paddle-signature"),
            separator: ';',
            timestamp_key: "ts",
            signature_key: "h1",
            joiner: b":",
            timestamp_format: TimestampFormat::UnixSeconds,
            encoding: Encoding::Hex,
        }
    }
}

impl KeyValueScheme {
    /// A preset of the same shape (Calendly, Buildkite, Persona), from its row of the
    /// provider table.
    pub fn preset(kv: &'static super::presets::KeyValue) -> Self {
        KeyValueScheme {
            header: HeaderName::from_bytes(kv.header.as_bytes())
                .expect("the provider table's headers are header names (tests)"),
            separator: kv.separator,
            timestamp_key: kv.timestamp_key,
            signature_key: kv.signature_key,
            joiner: kv.joiner.as_bytes(),
            timestamp_format: kv.timestamp_format,
            encoding: kv.encoding,
        }
    }
}

impl Scheme for KeyValueScheme {
    fn key(&self, secret: &str) -> Result<Key, String> {
        if secret.is_empty() {
            return Err("secret is empty".into());
        }
        Ok(Key::Mac(MacKey::new(Algorithm::Sha256, secret.as_bytes())))
    }

    fn sign(&self, keys: &[Key], message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        let timestamp = self.timestamp_format.write(message.timestamp);
        let mut value = format!("{}={timestamp}", self.timestamp_key);
        for key in keys {
            if let Key::Mac(mac) = key {
                let tag = mac.sign(&[timestamp.as_bytes(), self.joiner, message.body]);
                value.push(self.separator);
                value.push_str(&format!(
                    "{}={}",
                    self.signature_key,
                    self.encoding.encode(tag.as_ref())
                ));
            }
        }
        Ok(vec![(self.header.to_string(), value)])
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let header = parse::signature(request.headers, &self.header)?;
        let mut timestamp_text = None;
        let mut candidates = Candidates::default();
        for pair in header.split(self.separator).map(str::trim) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                VerifyError::malformed(format!("{:?} is not key=value", parse::truncate(pair)))
            })?;
            if k == self.timestamp_key {
                if timestamp_text.replace(v).is_some() {
                    return Err(VerifyError::malformed(format!(
                        "{} appears twice",
                        self.timestamp_key
                    )));
                }
            } else if k == self.signature_key {
                let tag = self
                    .encoding
                    .decode_tag(v)
                    .map_err(VerifyError::malformed)?;
                candidates.push(tag).map_err(VerifyError::malformed)?;
            }
        }
        let timestamp_text = timestamp_text.ok_or_else(|| {
            VerifyError::malformed(format!("no {}= timestamp", self.timestamp_key))
        })?;
        let timestamp = self.timestamp_format.read(timestamp_text)?;
        if candidates.as_slice().is_empty() {
            return Err(VerifyError::malformed(format!(
                "no {}= signature",
                self.signature_key
            )));
        }
        clock.check(timestamp)?;
        let parts: [&[u8]; 3] = [timestamp_text.as_bytes(), self.joiner, request.body];
        let index = matching_key(keys, &parts, candidates.as_slice())
            .ok_or(VerifyError::InvalidSignature)?;
        Ok(Verified {
            secret_index: index,
            id: None,
            timestamp: Some(timestamp),
            signed_id: false,
        })
    }
}
