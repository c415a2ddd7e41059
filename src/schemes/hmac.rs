//! The generic HMAC scheme (`scheme: hmac`) and the named schemes that are presets of it:
//! one signature header over a signed-content template.

use std::fmt;

use http::HeaderName;

use super::crypto::{ct_eq, Algorithm, Candidates, Encoding, MacKey};
use super::parse::{self, TimestampFormat};
use super::{Clock, Key, Message, Request, Scheme, Verified, VerifyError};

/// How the configured secret becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEncoding {
    /// The secret's UTF-8 bytes, as most providers do (including HIRESSCOPE's `whsec_...`).
    Utf8,
    /// Base64, after an optional `whsec_` prefix (Standard Webhooks style).
    Base64,
    Hex,
}

impl SecretEncoding {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "utf8" => Ok(SecretEncoding::Utf8),
            "base64" => Ok(SecretEncoding::Base64),
            "hex" => Ok(SecretEncoding::Hex),
            other => Err(format!("expected utf8, base64 or hex, found {other:?}")),
        }
    }

    pub fn key_bytes(self, secret: &str) -> Result<Vec<u8>, String> {
        match self {
            SecretEncoding::Utf8 => Ok(secret.as_bytes().to_vec()),
            SecretEncoding::Base64 => {
                let text = secret.strip_prefix("whsec_").unwrap_or(secret);
                super::crypto::base64_decode_lenient(text)
                    .map_err(|e| format!("secret is not base64: {e}"))
            }
            SecretEncoding::Hex => {
                const_hex::decode(secret).map_err(|_| "secret is not hex".to_string())
            }
        }
    }
}

/// One piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(Vec<u8>),
    Id,
    Timestamp,
    Body,
    Method,
    Url,
}

/// The signed content, e.g. `{timestamp}.{body}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub Vec<Part>);

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("unclosed '{{' in {text:?}"))?;
                    parts.push(match &rest[1..end] {
                        "id" => Part::Id,
                        "timestamp" => Part::Timestamp,
                        "body" => Part::Body,
                        "method" => Part::Method,
                        "url" => Part::Url,
                        other => {
                            return Err(format!(
                                "unknown placeholder {{{other}}} (use {{id}}, {{timestamp}}, {{body}}, {{method}}, {{url}})"
                            ))
                        }
                    });
                    rest = &rest[end + 1..];
                }
                Some(i) => {
                    parts.push(Part::Literal(rest.as_bytes()[..i].to_vec()));
                    rest = &rest[i..];
                }
                None => {
                    parts.push(Part::Literal(rest.as_bytes().to_vec()));
                    rest = "";
                }
            }
        }
        if !parts.contains(&Part::Body) {
            return Err(format!("{text:?} does not sign the body: add {{body}}"));
        }
        Ok(Template(parts))
    }

    fn uses(&self, part: &Part) -> bool {
        self.0.contains(part)
    }

    pub fn uses_timestamp(&self) -> bool {
        self.uses(&Part::Timestamp)
    }

    pub fn uses_url(&self) -> bool {
        self.uses(&Part::Url)
    }

    pub fn uses_id(&self) -> bool {
        self.uses(&Part::Id)
    }

    /// The signed content of a template of literals, `{timestamp}` and `{body}` (the
    /// asymmetric presets'; anything else in it is left out).
    pub fn render(&self, timestamp: &str, body: &[u8]) -> Vec<u8> {
        let mut content = Vec::with_capacity(body.len() + 32);
        for part in &self.0 {
            match part {
                Part::Literal(l) => content.extend_from_slice(l),
                Part::Timestamp => content.extend_from_slice(timestamp.as_bytes()),
                Part::Body => content.extend_from_slice(body),
                Part::Id | Part::Method | Part::Url => {}
            }
        }
        content
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.0 {
            match part {
                Part::Literal(l) => f.write_str(&String::from_utf8_lossy(l))?,
                Part::Id => f.write_str("{id}")?,
                Part::Timestamp => f.write_str("{timestamp}")?,
                Part::Body => f.write_str("{body}")?,
                Part::Method => f.write_str("{method}")?,
                Part::Url => f.write_str("{url}")?,
            }
        }
        Ok(())
    }
}

/// Everything that defines an HMAC scheme.
#[derive(Debug, Clone, PartialEq)]
pub struct HmacOptions {
    /// Lower-case header name carrying the signature.
    pub header: String,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Text before the encoded tag, e.g. `sha256=`.
    pub prefix: String,
    pub timestamp_header: Option<String>,
    pub id_header: Option<String>,
    pub template: Template,
    pub secret_encoding: SecretEncoding,
    /// A JSON pointer to a signed timestamp in milliseconds inside the body (Linear).
    pub body_timestamp_ms: Option<String>,
    /// How the timestamp header is written.
    pub timestamp_format: TimestampFormat,
    /// The header may hold several signatures split by this (PagerDuty's `v1=a,v1=b` while
    /// a secret rotates); any may match.
    pub signature_list: Option<char>,
}

impl HmacOptions {
    /// A preset's options, from its row of the provider table.
    pub fn preset(h: &super::presets::Hmac) -> Self {
        HmacOptions {
            header: h.header.to_ascii_lowercase(),
            algorithm: h.algorithm,
            encoding: h.encoding,
            prefix: h.prefix.to_string(),
            timestamp_header: h.timestamp_header.map(str::to_ascii_lowercase),
            id_header: h.id_header.map(str::to_ascii_lowercase),
            template: Template::parse(h.signed)
                .expect("preset templates parse (tests/scheme_presets.rs)"),
            secret_encoding: h.secret,
            body_timestamp_ms: h.body_timestamp_ms.map(str::to_string),
            timestamp_format: h.timestamp_format,
            signature_list: h.list,
        }
    }
}

pub struct HmacScheme {
    options: HmacOptions,
    names: Names,
}

/// The configured header names, parsed once.
struct Names {
    signature: HeaderName,
    timestamp: Option<HeaderName>,
    id: Option<HeaderName>,
}

/// The values a template can refer to.
struct Fields<'a> {
    id: &'a str,
    timestamp: &'a str,
    method: &'a str,
    url: &'a str,
    body: &'a [u8],
}

impl HmacScheme {
    pub fn new(options: HmacOptions) -> Result<Self, String> {
        let name =
            |n: &str| HeaderName::try_from(n).map_err(|_| format!("{n:?} is not a header name"));
        let names = Names {
            signature: name(&options.header)?,
            timestamp: options.timestamp_header.as_deref().map(name).transpose()?,
            id: options.id_header.as_deref().map(name).transpose()?,
        };
        Ok(HmacScheme { options, names })
    }

    /// The HMAC of the signed content, fed piece by piece (the body is not copied).
    fn tag(&self, key: &MacKey, fields: &Fields) -> ring::hmac::Tag {
        key.sign_with(|context| {
            for part in &self.options.template.0 {
                context.update(match part {
                    Part::Literal(l) => l.as_slice(),
                    Part::Id => fields.id.as_bytes(),
                    Part::Timestamp => fields.timestamp.as_bytes(),
                    Part::Body => fields.body,
                    Part::Method => fields.method.as_bytes(),
                    Part::Url => fields.url.as_bytes(),
                });
            }
        })
    }

    fn body_timestamp(&self, pointer: &str, body: &[u8]) -> Result<u64, VerifyError> {
        let malformed = |detail: &str| VerifyError::MalformedTimestamp {
            detail: detail.to_string(),
        };
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| malformed("body is not JSON"))?;
        let millis = json
            .pointer(pointer)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| malformed(&format!("body has no {pointer} in milliseconds")))?;
        Ok(millis / 1000)
    }
}

impl Scheme for HmacScheme {
    fn id_header(&self) -> Option<&str> {
        self.options.id_header.as_deref()
    }

    fn key(&self, secret: &str) -> Result<Key, String> {
        let bytes = self.options.secret_encoding.key_bytes(secret)?;
        if bytes.is_empty() {
            return Err("secret is empty".into());
        }
        Ok(Key::Mac(MacKey::new(self.options.algorithm, &bytes)))
    }

    fn sign(&self, keys: &[Key], message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        let Some(Key::Mac(key)) = keys.first() else {
            return Err(VerifyError::InvalidSignature);
        };
        let o = &self.options;
        let url = match (o.template.uses(&Part::Url), message.url) {
            (true, None) => return Err(VerifyError::MissingUrl),
            (_, url) => url.unwrap_or(""),
        };
        let timestamp = o.timestamp_format.write(message.timestamp);
        let fields = Fields {
            id: message.id,
            timestamp: &timestamp,
            method: message.method,
            url,
            body: message.body,
        };
        let tag = self.tag(key, &fields);
        let mut headers = vec![(
            o.header.clone(),
            format!("{}{}", o.prefix, o.encoding.encode(tag.as_ref())),
        )];
        if let Some(h) = &o.timestamp_header {
            headers.push((h.clone(), timestamp));
        }
        if let Some(h) = &o.id_header {
            headers.push((h.clone(), message.id.to_string()));
        }
        Ok(headers)
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let o = &self.options;
        let text = parse::signature(request.headers, &self.names.signature)?;
        // One signature, or a list of them (no allocation on the request path).
        let separator = o.signature_list.unwrap_or('\0');
        let mut candidates = Candidates::default();
        for entry in text.split(separator).map(str::trim) {
            let encoded = entry.strip_prefix(o.prefix.as_str()).ok_or_else(|| {
                VerifyError::malformed(format!("{} should start with {:?}", o.header, o.prefix))
            })?;
            let received = o
                .encoding
                .decode_tag(encoded)
                .map_err(VerifyError::malformed)?;
            if received.as_ref().len() != o.algorithm.tag_len() {
                return Err(VerifyError::malformed(format!(
                    "expected a {}-byte tag, found {} bytes",
                    o.algorithm.tag_len(),
                    received.as_ref().len()
                )));
            }
            candidates.push(received).map_err(VerifyError::malformed)?;
        }
        let (timestamp_text, timestamp) = match &self.names.timestamp {
            Some(h) => {
                let text = parse::required(request.headers, h)?;
                let ts = o.timestamp_format.read(text)?;
                clock.check(ts)?;
                (text, Some(ts))
            }
            None => ("", None),
        };
        let id = match &self.names.id {
            Some(h) if o.template.uses(&Part::Id) => Some(parse::required(request.headers, h)?),
            Some(h) => parse::single(request.headers, h)?,
            None => None,
        };
        let url = match (o.template.uses(&Part::Url), request.url) {
            (true, None) => return Err(VerifyError::MissingUrl),
            (_, url) => url.unwrap_or(""),
        };
        let fields = Fields {
            id: id.unwrap_or(""),
            timestamp: timestamp_text,
            method: request.method,
            url,
            body: request.body,
        };
        let index = keys
            .iter()
            .position(|k| {
                matches!(k, Key::Mac(mac) if {
                    let tag = self.tag(mac, &fields);
                    candidates.as_slice().iter().any(|c| ct_eq(tag.as_ref(), c.as_ref()))
                })
            })
            .ok_or(VerifyError::InvalidSignature)?;
        // A timestamp inside the body can only be trusted once the body is authentic.
        let timestamp = match &o.body_timestamp_ms {
            Some(pointer) => {
                let ts = self.body_timestamp(pointer, request.body)?;
                clock.check(ts)?;
                Some(ts)
            }
            None => timestamp,
        };
        Ok(Verified {
            secret_index: index,
            id: id.map(str::to_string),
            timestamp,
            signed_id: id.is_some() && o.template.uses(&Part::Id),
        })
    }
}
