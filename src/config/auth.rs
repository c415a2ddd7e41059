//! `auth:` on an endpoint, a subscription or `outbound.destinations`: what a receiver asks
//! for on top of the signature (an API-key header, Basic, or an OAuth2 bearer token from
//! client credentials). Its values are secrets: the store keeps them, the API shows them
//! masked, and nothing logs them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::load::parse_destination;
use super::values::valid_header_name;
use super::Secret;

/// What an API answer shows instead of a secret value.
pub const MASKED: &str = "[masked]";
/// Most headers one `auth` adds.
const MAX_HEADERS: usize = 16;
/// Longest value of any one field.
const MAX_VALUE: usize = 4096;
/// Headers hookgate sets itself: the framing, and the message's own.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "traceparent",
    "tracestate",
];

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverAuth {
    /// Sent as they are, such as `X-Api-Key`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// `Authorization: Basic` (RFC 7617).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// `Authorization: Bearer` with a token from client credentials (RFC 6749 §4.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub user: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Sent as `audience` (Auth0 and others ask for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret, which every server must accept.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

impl ReceiverAuth {
    /// Checks what the YAML and the API both accept; the error names the field.
    pub fn check(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
        if self.headers.is_empty() && self.basic.is_none() && self.oauth2.is_none() {
            return fail("auth", "give headers, basic or oauth2");
        }
        if self.basic.is_some() && self.oauth2.is_some() {
            return fail("auth", "basic and oauth2 both set Authorization: give one");
        }
        if self.headers.len() > MAX_HEADERS {
            return fail("auth.headers", "at most 16 headers");
        }
        for (name, value) in &self.headers {
            let field = format!("auth.headers.{name}");
            let lower = name.to_ascii_lowercase();
            if !valid_header_name(name) {
                return fail(&field, "not a header name");
            }
            if RESERVED.contains(&lower.as_str()) {
                return fail(&field, "hookgate sets this header itself");
            }
            if lower == "authorization" && (self.basic.is_some() || self.oauth2.is_some()) {
                return fail(&field, "basic or oauth2 sets Authorization: give one");
            }
            secret_value(&field, value.expose())?;
        }
        if let Some(basic) = &self.basic {
            if basic.user.is_empty() || basic.user.contains(':') {
                return fail("auth.basic.user", "a user name without ':' (RFC 7617)");
            }
            plain_value("auth.basic.user", &basic.user)?;
            secret_value("auth.basic.password", basic.password.expose())?;
        }
        if let Some(oauth2) = &self.oauth2 {
            parse_destination(&oauth2.token_url)
                .map_err(|e| ("auth.oauth2.token_url".to_string(), e))?;
            if oauth2.client_id.is_empty() {
                return fail("auth.oauth2.client_id", "must not be empty");
            }
            plain_value("auth.oauth2.client_id", &oauth2.client_id)?;
            secret_value("auth.oauth2.client_secret", oauth2.client_secret.expose())?;
            for scope in &oauth2.scopes {
                // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
                let token = |c: char| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
                if scope.is_empty() || !scope.chars().all(token) {
                    return fail(
                        "auth.oauth2.scopes",
                        "a scope is printable, without spaces, '\"' or '\\'",
                    );
                }
            }
            if let Some(audience) = &oauth2.audience {
                plain_value("auth.oauth2.audience", audience)?;
            }
        }
        Ok(())
    }

    /// As an API answer shows it: every secret value replaced by [`MASKED`].
    pub fn masked(&self) -> Value {
        let mut shown = json!({});
        if !self.headers.is_empty() {
            let headers: serde_json::Map<String, Value> = self
                .headers
                .keys()
                .map(|name| (name.clone(), json!(MASKED)))
                .collect();
            shown["headers"] = Value::Object(headers);
        }
        if let Some(basic) = &self.basic {
            shown["basic"] = json!({ "user": basic.user, "password": MASKED });
        }
        if let Some(oauth2) = &self.oauth2 {
            shown["oauth2"] = json!({
                "token_url": oauth2.token_url,
                "client_id": oauth2.client_id,
                "client_secret": MASKED,
                "scopes": oauth2.scopes,
                "audience": oauth2.audience,
                "client_auth": oauth2.client_auth,
            });
        }
        shown
    }
}

/// A value sent in a header: printable, bounded, and not the mask an answer showed (a
/// client that sends back what it read would otherwise store the mask as the secret).
fn secret_value(field: &str, value: &str) -> Result<(), (String, String)> {
    if value == MASKED {
        return Err((
            field.to_string(),
            "this is the mask an answer shows: send the value itself".to_string(),
        ));
    }
    if value.is_empty() {
        return Err((field.to_string(), "must not be empty".to_string()));
    }
    plain_value(field, value)
}

fn plain_value(field: &str, value: &str) -> Result<(), (String, String)> {
    if value.len() > MAX_VALUE || value.chars().any(|c| c.is_control()) {
        return Err((
            field.to_string(),
            "at most 4096 characters, without control characters".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: Value) -> ReceiverAuth {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn conflicting_reserved_and_masked_values_are_refused_with_their_field() {
        let cases = [
            (json!({}), "auth"),
            (
                json!({"basic": {"user": "u", "password": "p"}, "oauth2": {"token_url": "https://t.example/token", "client_id": "c", "client_secret": "s"}}),
                "auth",
            ),
            (
                json!({"headers": {"Content-Length": "1"}}),
                "auth.headers.Content-Length",
            ),
            (json!({"headers": {"X Key": "1"}}), "auth.headers.X Key"),
            (
                json!({"headers": {"X-Key": "a\r\nb"}}),
                "auth.headers.X-Key",
            ),
            (json!({"headers": {"X-Key": MASKED}}), "auth.headers.X-Key"),
            (
                json!({"headers": {"Authorization": "k"}, "basic": {"user": "u", "password": "p"}}),
                "auth.headers.Authorization",
            ),
            (
                json!({"basic": {"user": "a:b", "password": "p"}}),
                "auth.basic.user",
            ),
            (
                json!({"oauth2": {"token_url": "ftp://t", "client_id": "c", "client_secret": "s"}}),
                "auth.oauth2.token_url",
            ),
            (
                json!({"oauth2": {"token_url": "https://t.example/", "client_id": "c", "client_secret": "s", "scopes": ["a b"]}}),
                "auth.oauth2.scopes",
            ),
        ];
        for (value, field) in cases {
            let (got, _) = auth(value.clone()).check().unwrap_err();
            assert_eq!(got, field, "{value}");
        }
        assert!(auth(json!({"headers": {"Authorization": "Token k"}}))
            .check()
            .is_ok());
    }

    #[test]
    fn the_masked_form_keeps_names_and_hides_every_secret() {
        let auth = auth(json!({
            "headers": {"X-Api-Key": "key-123"},
            "oauth2": {"token_url": "https://t.example/token", "client_id": "id-1", "client_secret": "cs-456", "scopes": ["hooks:write"]},
        }));
        let shown = auth.masked().to_string();
        assert!(
            shown.contains("X-Api-Key") && shown.contains("id-1") && shown.contains("hooks:write")
        );
        assert!(
            !shown.contains("key-123") && !shown.contains("cs-456"),
            "{shown}"
        );
    }
}
