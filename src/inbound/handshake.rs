//! A route's `handshake:`: the ownership check a provider makes before it sends anything,
//! answered by hookgate (which holds the secret) and never forwarded to the app.
//!
//! Two stages of the inbound path: [`RouteHandshake::before_verify`] answers the checks
//! that carry no signature (X's CRC, Meta's, Dropbox's and Microsoft Graph's challenges);
//! [`RouteHandshake::after_verify`] answers the signed ones (Slack's and Zoom's bodies, and
//! Okta's header, which carries the route's credentials) once verify passed, so a forged
//! one is refused like any forgery.

use base64::Engine;
use pingora::http::RequestHeader;
use ring::hmac;
use subtle::ConstantTimeEq;

use super::client::Client;
use super::{InboundApp, Outcome};
use crate::config::{Handshake, RouteConfig, Verify};
use crate::error_response::ErrorResponse;
use crate::metrics::METRICS;

/// The longest challenge echoed back: providers send a few dozen bytes (Microsoft Graph's
/// validation token, the longest, about 200).
pub const MAX_CHALLENGE: usize = 1024;

/// A route's handshake, with the secret it answers with.
pub struct RouteHandshake {
    kind: Handshake,
    /// Zoom's and X's answers are an HMAC with the route's first secret.
    key: Option<hmac::Key>,
    /// Meta's `hub.verify_token`.
    verify_token: Option<Vec<u8>>,
}

/// hookgate's answer to a handshake.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl RouteHandshake {
    pub fn new(route: &RouteConfig) -> Option<Self> {
        let kind = route.handshake?;
        let key = match &route.verify {
            Verify::Scheme(verify) => verify
                .secrets
                .first()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.expose().as_bytes())),
            Verify::None => None,
        };
        Some(RouteHandshake {
            kind,
            key,
            verify_token: route
                .verify_token
                .as_ref()
                .map(|t| t.expose().as_bytes().to_vec()),
        })
    }

    pub fn provider(&self) -> &'static str {
        self.kind.name()
    }

    /// The unsigned handshakes, recognised by method and query: `None` for any other request.
    pub fn before_verify(&self, header: &RequestHeader) -> Option<Result<Reply, ErrorResponse>> {
        let method = header.method.as_str();
        let query = header.uri.query().unwrap_or_default();
        // A parameter given twice, or not UTF-8 once decoded, is refused (never read as absent).
        macro_rules! param {
            ($name:expr) => {
                match query_value(query, $name)? {
                    Ok(value) => value,
                    Err(refused) => return Some(Err(refused)),
                }
            };
        }
        let answer = match (self.kind, method) {
            (Handshake::X, "GET") => {
                let token = param!("crc_token");
                challenge(&token).and_then(|_| {
                    let key = self.key.as_ref().ok_or_else(no_secret)?;
                    let mac = hmac::sign(key, token.as_bytes());
                    let proof = base64::engine::general_purpose::STANDARD.encode(mac.as_ref());
                    Ok(json(&[("response_token", &format!("sha256={proof}"))]))
                })
            }
            (Handshake::Meta, "GET") => {
                if param!("hub.mode") != "subscribe" {
                    return None;
                }
                let given = match query_value(query, "hub.verify_token") {
                    None => String::new(),
                    Some(given) => match given {
                        Ok(given) => given,
                        Err(refused) => return Some(Err(refused)),
                    },
                };
                let expected = self.verify_token.as_deref().unwrap_or_default();
                if !bool::from(given.as_bytes().ct_eq(expected)) || expected.is_empty() {
                    return Some(Err(ErrorResponse::new(
                        403,
                        "handshake_refused",
                        "hub.verify_token does not match the route's verify_token",
                    )));
                }
                let value = match query_value(query, "hub.challenge") {
                    None => String::new(),
                    Some(value) => match value {
                        Ok(value) => value,
                        Err(refused) => return Some(Err(refused)),
                    },
                };
                challenge(&value).map(|_| text(value))
            }
            (Handshake::Dropbox, "GET") => {
                let value = param!("challenge");
                challenge(&value).map(|_| text(value))
            }
            (Handshake::MsGraph, "POST") => {
                let value = param!("validationToken");
                challenge(&value).map(|_| text(value))
            }
            _ => return None,
        };
        Some(answer)
    }

    /// The signed handshakes, once verify passed: `None` for an ordinary webhook.
    pub fn after_verify(
        &self,
        header: &RequestHeader,
        body: &[u8],
    ) -> Option<Result<Reply, ErrorResponse>> {
        let answer = match self.kind {
            Handshake::Slack => {
                let event = json_body(body, b"url_verification")?;
                if event.get("type")?.as_str()? != "url_verification" {
                    return None;
                }
                let value = string_field(event.get("challenge"));
                value.and_then(|c| challenge(c).map(|_| json(&[("challenge", c)])))
            }
            Handshake::Zoom => {
                let event = json_body(body, b"endpoint.url_validation")?;
                if event.get("event")?.as_str()? != "endpoint.url_validation" {
                    return None;
                }
                let value = string_field(event.pointer("/payload/plainToken"));
                value.and_then(|token| {
                    challenge(token)?;
                    let mac =
                        hmac::sign(self.key.as_ref().ok_or_else(no_secret)?, token.as_bytes());
                    let encrypted = const_hex::encode(mac.as_ref());
                    Ok(json(&[
                        ("plainToken", token),
                        ("encryptedToken", &encrypted),
                    ]))
                })
            }
            Handshake::Okta => {
                let value = header.headers.get("x-okta-verification-challenge")?;
                let value = value
                    .to_str()
                    .map_err(|_| malformed("the challenge is not text"));
                value.and_then(|c| challenge(c).map(|_| json(&[("verification", c)])))
            }
            _ => return None,
        };
        Some(answer)
    }
}

/// The value of `name` in a query string, percent-decoded (`+` is a space): `None` when it
/// is absent; refused when it is given twice (ambiguous) or does not decode to UTF-8.
fn query_value(query: &str, name: &str) -> Option<Result<String, ErrorResponse>> {
    let decode = |raw: &str| {
        let spaced = raw.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|v| v.into_owned())
    };
    let mut values = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(n, _)| decode(n).is_ok_and(|n| n == name))
        .map(|(_, v)| v);
    let raw = values.next()?;
    if values.next().is_some() {
        return Some(Err(malformed(&format!("{name} is given twice"))));
    }
    Some(decode(raw).map_err(|_| malformed(&format!("{name} is not UTF-8 once decoded"))))
}

/// A body that may be a handshake: only bodies holding `marker` are parsed.
fn json_body(body: &[u8], marker: &[u8]) -> Option<serde_json::Value> {
    if !body.windows(marker.len()).any(|w| w == marker) {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn string_field(value: Option<&serde_json::Value>) -> Result<&str, ErrorResponse> {
    value
        .and_then(|v| v.as_str())
        .ok_or_else(|| malformed("the challenge is missing or not a string"))
}

/// A challenge hookgate echoes: not empty, at most [`MAX_CHALLENGE`] bytes, no control
/// characters.
fn challenge(value: &str) -> Result<(), ErrorResponse> {
    if value.len() > MAX_CHALLENGE {
        return Err(ErrorResponse::new(
            400,
            "handshake_too_long",
            format!("the challenge is over {MAX_CHALLENGE} bytes"),
        ));
    }
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(malformed(
            "the challenge is empty or holds control characters",
        ));
    }
    Ok(())
}

fn malformed(why: &str) -> ErrorResponse {
    ErrorResponse::new(400, "invalid_handshake", why)
}

fn no_secret() -> ErrorResponse {
    // `hookgate check` refuses such a route; kept as an answer, never a panic.
    ErrorResponse::new(500, "handshake_unconfigured", "the route has no secret")
}

fn json(fields: &[(&str, &str)]) -> Reply {
    let object: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    Reply {
        content_type: "application/json",
        body: serde_json::to_vec(&object).unwrap_or_default(),
    }
}

fn text(value: String) -> Reply {
    Reply {
        content_type: "text/plain; charset=utf-8",
        body: value.into_bytes(),
    }
}

impl InboundApp {
    /// Answers a provider's handshake (or refuses it); the app never sees it.
    pub(super) async fn handshake(
        &self,
        client: &mut Client<'_>,
        route: &'static str,
        provider: &'static str,
        reply: Result<Reply, ErrorResponse>,
    ) -> Outcome {
        match reply {
            Ok(reply) => {
                METRICS.record_handshake(route, provider, "answered");
                let fields = [
                    ("Content-Type", reply.content_type),
                    ("Cache-Control", "no-store"),
                    ("X-Content-Type-Options", "nosniff"),
                ];
                let written = client.respond(200, &fields, &reply.body, true).await;
                Outcome {
                    route,
                    outcome: "handshake",
                    status: 200,
                    reusable: written.is_ok(),
                }
            }
            Err(answer) => {
                METRICS.record_handshake(route, provider, "refused");
                self.answer(client, route, answer, true).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, target: &str) -> RequestHeader {
        RequestHeader::build(method, target.as_bytes(), None).unwrap()
    }

    fn route(kind: Handshake, token: Option<&str>) -> RouteHandshake {
        RouteHandshake {
            kind,
            key: Some(hmac::Key::new(hmac::HMAC_SHA256, b"secret")),
            verify_token: token.map(|t| t.as_bytes().to_vec()),
        }
    }

    #[test]
    fn only_the_handshake_of_the_route_is_answered() {
        let dropbox = route(Handshake::Dropbox, None);
        assert!(dropbox
            .before_verify(&head("GET", "/h?challenge=abc"))
            .is_some());
        assert!(dropbox
            .before_verify(&head("POST", "/h?challenge=abc"))
            .is_none());
        assert!(dropbox
            .before_verify(&head("GET", "/h?crc_token=abc"))
            .is_none());
        // Twice is ambiguous, and bytes that are not UTF-8 cannot be echoed: both refused.
        for target in ["/h?challenge=a&challenge=b", "/h?challenge=%FF%FE"] {
            let refused = dropbox
                .before_verify(&head("GET", target))
                .unwrap()
                .unwrap_err();
            assert_eq!(refused.code, "invalid_handshake", "{target}");
        }
    }

    #[test]
    fn meta_needs_the_verify_token() {
        let meta = route(Handshake::Meta, Some("tok"));
        let ok = "/h?hub.mode=subscribe&hub.verify_token=tok&hub.challenge=42";
        assert_eq!(
            meta.before_verify(&head("GET", ok)).unwrap().unwrap().body,
            b"42"
        );
        let bad = "/h?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=42";
        let refused = meta.before_verify(&head("GET", bad)).unwrap().unwrap_err();
        assert_eq!((refused.status, refused.code), (403, "handshake_refused"));
    }

    #[test]
    fn challenges_are_capped_and_printable() {
        let dropbox = route(Handshake::Dropbox, None);
        let long = format!("/h?challenge={}", "a".repeat(MAX_CHALLENGE + 1));
        let refused = dropbox
            .before_verify(&head("GET", &long))
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.code, "handshake_too_long");
        let control = dropbox
            .before_verify(&head("GET", "/h?challenge=a%0Db"))
            .unwrap()
            .unwrap_err();
        assert_eq!(control.code, "invalid_handshake");
    }

    #[test]
    fn slack_bodies_that_are_not_a_handshake_pass_on() {
        let slack = route(Handshake::Slack, None);
        let header = head("POST", "/h");
        assert!(slack
            .after_verify(&header, br#"{"type":"event_callback"}"#)
            .is_none());
        assert!(slack
            .after_verify(&header, b"not json url_verification")
            .is_none());
        let reply = slack
            .after_verify(
                &header,
                br#"{"type":"url_verification","challenge":"c<b>"}"#,
            )
            .unwrap()
            .unwrap();
        assert_eq!(reply.body, br#"{"challenge":"c<b>"}"#);
    }
}
