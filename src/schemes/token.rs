//! Static credentials: `Authorization: Bearer` (also Jobylon), `Authorization: Basic`,
//! GitLab's `X-Gitlab-Token`, and a token in a provider's own header (Telegram's
//! `X-Telegram-Bot-Api-Secret-Token`). Compared in constant time; stripped before forwarding.

use http::HeaderName;

use super::crypto::{base64_decode_lenient, base64_encode, ct_eq};
use super::{parse, Clock, Key, Message, Request, Scheme, Verified, VerifyError};

#[derive(Clone, Copy)]
enum Kind {
    Bearer,
    Basic,
    GitLab,
    /// The token as it is, in this header (lower case), from the provider table.
    Header(&'static &'static str),
}

pub struct TokenScheme {
    kind: Kind,
}

impl TokenScheme {
    pub fn bearer() -> Self {
        TokenScheme { kind: Kind::Bearer }
    }
    pub fn basic() -> Self {
        TokenScheme { kind: Kind::Basic }
    }
    pub fn gitlab() -> Self {
        TokenScheme { kind: Kind::GitLab }
    }
    pub fn in_header(name: &'static &'static str) -> Self {
        TokenScheme {
            kind: Kind::Header(name),
        }
    }

    fn header(&self) -> HeaderName {
        match self.kind {
            Kind::Bearer | Kind::Basic => http::header::AUTHORIZATION,
            Kind::GitLab => HeaderName::from_static("x-gitlab-token"),
            Kind::Header(name) => HeaderName::from_static(name),
        }
    }

    /// The credential bytes a request presents.
    fn presented(&self, value: &str) -> Result<Vec<u8>, VerifyError> {
        let after = |scheme: &str| {
            value
                .get(..scheme.len())
                .filter(|s| s.eq_ignore_ascii_case(scheme))
                .map(|_| value[scheme.len()..].trim())
                .ok_or_else(|| {
                    VerifyError::malformed(format!("Authorization should start with {scheme}"))
                })
        };
        match self.kind {
            Kind::Bearer => Ok(after("Bearer ")?.as_bytes().to_vec()),
            Kind::Basic => base64_decode_lenient(after("Basic ")?).map_err(|e| {
                VerifyError::malformed(format!("bad base64 in Basic credentials: {e}"))
            }),
            Kind::GitLab | Kind::Header(_) => Ok(value.as_bytes().to_vec()),
        }
    }
}

impl Scheme for TokenScheme {
    fn key(&self, secret: &str) -> Result<Key, String> {
        if secret.is_empty() {
            return Err("secret is empty".into());
        }
        if matches!(self.kind, Kind::Basic) && !secret.contains(':') {
            return Err("expected user:password".into());
        }
        Ok(Key::Token(secret.as_bytes().to_vec()))
    }

    fn sign(&self, keys: &[Key], _message: &Message) -> Result<Vec<(String, String)>, VerifyError> {
        let Some(Key::Token(token)) = keys.first() else {
            return Err(VerifyError::InvalidSignature);
        };
        let token = String::from_utf8_lossy(token);
        let value = match self.kind {
            Kind::Bearer => format!("Bearer {token}"),
            Kind::Basic => format!("Basic {}", base64_encode(token.as_bytes())),
            Kind::GitLab | Kind::Header(_) => token.into_owned(),
        };
        Ok(vec![(self.header().to_string(), value)])
    }

    fn verify(
        &self,
        keys: &[Key],
        request: &Request,
        _clock: &Clock,
    ) -> Result<Verified, VerifyError> {
        let value = parse::signature(request.headers, &self.header())?;
        let presented = self.presented(value)?;
        let index = keys
            .iter()
            .position(|k| matches!(k, Key::Token(t) if ct_eq(t, &presented)))
            .ok_or(VerifyError::InvalidSignature)?;
        let id = match self.kind {
            // GitLab 17.4+ keeps Idempotency-Key across retries; older versions send only the event UUID.
            Kind::GitLab => {
                match parse::single(request.headers, &HeaderName::from_static("idempotency-key"))? {
                    Some(id) => Some(id),
                    None => parse::single(
                        request.headers,
                        &HeaderName::from_static("x-gitlab-event-uuid"),
                    )?,
                }
            }
            _ => None,
        };
        Ok(Verified {
            secret_index: index,
            id: id.map(str::to_string),
            timestamp: None,
            signed_id: false,
        })
    }

    fn credential_headers(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Bearer | Kind::Basic => &["authorization"],
            Kind::GitLab => &["x-gitlab-token"],
            Kind::Header(name) => std::slice::from_ref(name),
        }
    }
}
