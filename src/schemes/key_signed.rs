//! What the presets signed with a provider's private key share (Ed25519, ECDSA): a
//! signature header, a timestamp header in unix seconds, and a signed content of the
//! timestamp and the body. Each scheme brings its curve.

use http::HeaderName;

use super::hmac::Template;
use super::parse;
use super::{Clock, Key, Message, Request, Verified, VerifyError};

pub struct KeySigned {
    signature: HeaderName,
    timestamp: HeaderName,
    template: Template,
}

/// A request's signature text, and the content it must sign.
pub struct Received<'r> {
    pub signature: &'r str,
    pub timestamp: u64,
    pub content: Vec<u8>,
}

impl KeySigned {
    pub fn new(signature: &str, timestamp: &str, signed: &str) -> Self {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes())
                .expect("the provider table's headers are header names (tests)")
        };
        KeySigned {
            signature: name(signature),
            timestamp: name(timestamp),
            template: Template::parse(signed).expect("preset templates parse (tests)"),
        }
    }

    /// The headers for `message`, with `sign` making the encoded signature of the content.
    pub fn sign(
        &self,
        message: &Message,
        sign: impl FnOnce(&[u8]) -> Result<String, VerifyError>,
    ) -> Result<Vec<(String, String)>, VerifyError> {
        let timestamp = message.timestamp.to_string();
        let signature = sign(&self.template.render(&timestamp, message.body))?;
        Ok(vec![
            (self.signature.to_string(), signature),
            (self.timestamp.to_string(), timestamp),
        ])
    }

    /// Reads the signature and the timestamp (within the clock's tolerance).
    pub fn read<'r>(
        &self,
        request: &'r Request,
        clock: &Clock,
    ) -> Result<Received<'r>, VerifyError> {
        let signature = parse::signature(request.headers, &self.signature)?;
        let text = parse::required(request.headers, &self.timestamp)?;
        let timestamp = parse::timestamp(text)?;
        clock.check(timestamp)?;
        Ok(Received {
            signature,
            timestamp,
            content: self.template.render(text, request.body),
        })
    }
}

/// The first key `verifies` accepts, as the answer of a verify.
pub fn verified(
    keys: &[Key],
    timestamp: u64,
    verifies: impl Fn(&Key) -> bool,
) -> Result<Verified, VerifyError> {
    let index = keys
        .iter()
        .position(verifies)
        .ok_or(VerifyError::InvalidSignature)?;
    Ok(Verified {
        secret_index: index,
        id: None,
        timestamp: Some(timestamp),
        signed_id: false,
    })
}
