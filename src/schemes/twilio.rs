//! Twilio: base64 HMAC-SHA1 (key: the Auth Token) over the full URL followed by the POST
//! parameters sorted by name, each as name+value. JSON bodies are signed through a
//! `bodySHA256` query parameter instead, which must match the body's SHA-256.

use http::HeaderName;

use super::crypto::{ct_eq, sha256_hex, Algorithm, Encoding, MacKey};
use super::{parse, Clock, Key, Message, Request, Scheme, Verified, VerifyError};

const HEADER: HeaderName = HeaderName::from_static("x-twilio-signature");
const IDEMPOTENCY: HeaderName = HeaderName::from_static("i-twilio-idempotency-token");

pub struct Twilio;

/// URL followed by sorted name+value pairs. Repeated names: values sorted too.
fn signed_content(url: &str, body: &[u8], form: bool) -> Vec<u8> {
    let mut content = url.as_bytes().to_vec();
    if form {
        let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        params.sort();
        params.dedup();
        for (name, value) in params {
            content.extend_from_slice(name.as_bytes());
            content.extend_from_slice(value.as_bytes());
        }
    }
    content
}

fn body_sha256_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

/// The URL as signed, and with the default port added or removed: Twilio's own
/// validators accept both.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        let Some(rest) = url.strip_prefix(scheme) else {
            continue;
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let other = match authority.strip_suffix(port) {
            Some(host) => format!("{scheme}{host}{tail}"),
            None if !authority.contains(':') => format!("{scheme}{authority}{port}{tail}"),
            None => continue,
        };
        variants.push(other);
    }
    variants
}

impl Scheme for Twilio {
    fn key(&self, secret: &str) -> Result<Key, String> {
        if secret.is_empty() {
            return Err("secret is empty".into());
        }
        Ok(Key::Mac(MacKey::new(Algorithm::Sha1, secret.as_bytes())))
    }

    fn sign(&self, keys: &[Key], message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        let Some(Key::Mac(mac)) = keys.first() else {
            return Err(VerifyError::InvalidSignature);
        };
        let url = message.url.ok_or(VerifyError::MissingUrl)?;
        let form = body_sha256_param(url).is_none();
        let tag = mac.sign(&[&signed_content(url, message.body, form)]);
        Ok(vec![(
            HEADER.to_string(),
            Encoding::Base64.encode(tag.as_ref()),
        )])
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        _clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let text = parse::signature(request.headers, &HEADER)?;
        let received = Encoding::Base64
            .decode_tag(text)
            .map_err(VerifyError::malformed)?;
        let received = received.as_ref();
        if received.len() != Algorithm::Sha1.tag_len() {
            return Err(VerifyError::malformed(format!(
                "expected a 20-byte tag, found {} bytes",
                received.len()
            )));
        }
        let url = request.url.ok_or(VerifyError::MissingUrl)?;
        let form = match body_sha256_param(url) {
            Some(expected) => {
                if !ct_eq(
                    sha256_hex(request.body).as_bytes(),
                    expected.to_ascii_lowercase().as_bytes(),
                ) {
                    return Err(VerifyError::InvalidSignature);
                }
                false
            }
            None => request
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded")),
        };
        for variant in url_variants(url) {
            let content = signed_content(&variant, request.body, form);
            if let Some(index) = keys
                .iter()
                .position(|k| matches!(k, Key::Mac(mac) if mac.verify(&[&content], received)))
            {
                return Ok(Verified {
                    secret_index: index,
                    id: parse::single(request.headers, &IDEMPOTENCY)?.map(str::to_string),
                    timestamp: None,
                    signed_id: false,
                });
            }
        }
        Err(VerifyError::InvalidSignature)
    }
}
