//! OAuth2 client credentials (RFC 6749 §4.4) for receivers that want a bearer token. One
//! token per set of credentials, cached until shortly before it expires. When it must be
//! fetched, one delivery fetches it while the others wait for that answer (single flight).
//! A receiver's 401 drops the token it was sent with, once, however many deliveries got
//! the 401 with it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::http::RequestHeader;

use super::deliver::AttemptError;
use crate::config::auth::{ClientAuth, OAuth2};
use crate::config::{parse_destination, Destination};
use crate::metrics::METRICS;
use crate::schemes::crypto::base64_encode;

/// A token whose answer gives no `expires_in` is used this long (or until a 401).
const NO_EXPIRY: Duration = Duration::from_secs(300);
/// Refreshed this much before it expires, at most (a tenth of its life for short ones).
const EARLY: Duration = Duration::from_secs(30);
/// After a failed fetch, deliveries fail at once with its error for this long, so a down
/// token endpoint is asked once a second, not once per delivery.
const FAILURE_HOLD: Duration = Duration::from_secs(1);

pub struct TokenSource {
    config: OAuth2,
    pub destination: Destination,
    state: Mutex<State>,
    /// Held while a token is fetched: the deliveries that need one wait here.
    flight: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

#[derive(Default)]
enum State {
    #[default]
    Empty,
    Valid(Token),
    Failed {
        error: AttemptError,
        until: Instant,
    },
}

#[derive(Clone)]
pub struct Token {
    pub value: String,
    /// Which fetch gave it, so that a 401 drops this token and not a newer one.
    pub generation: u64,
    refresh_at: Instant,
}

impl TokenSource {
    pub fn new(config: OAuth2) -> Result<Self, String> {
        Ok(TokenSource {
            destination: parse_destination(&config.token_url)?,
            config,
            state: Mutex::default(),
            flight: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        })
    }

    /// The cached token, or the error of a fetch that failed just now.
    fn cached(&self, now: Instant) -> Option<Result<Token, AttemptError>> {
        match &*self.lock() {
            State::Valid(token) if now < token.refresh_at => Some(Ok(token.clone())),
            State::Failed { error, until } if now < *until => Some(Err(error.clone())),
            _ => None,
        }
    }

    /// A token: the cached one, or one `fetch` gets by POSTing the request it is given
    /// to the token endpoint and returning the status and body.
    pub(super) async fn token<F, Fut>(&self, fetch: F) -> Result<Token, AttemptError>
    where
        F: FnOnce(RequestHeader, Bytes) -> Fut,
        Fut: Future<Output = Result<(u16, Vec<u8>), AttemptError>>,
    {
        if let Some(cached) = self.cached(Instant::now()) {
            return cached;
        }
        let _flight = self.flight.lock().await;
        // Another delivery may have fetched it while this one waited.
        if let Some(cached) = self.cached(Instant::now()) {
            return cached;
        }
        let (request, body) = self.request()?;
        let host = &self.destination.host;
        let result = match fetch(request, body).await {
            Ok((status, answer)) => parse_answer(status, &answer)
                .map_err(|e| AttemptError::Failed(format!("OAuth2 token endpoint {host}: {e}"))),
            Err(AttemptError::Refused(e)) => Err(AttemptError::Refused(format!(
                "OAuth2 token endpoint {host}: {e}"
            ))),
            Err(AttemptError::Failed(e)) => Err(AttemptError::Failed(format!(
                "OAuth2 token endpoint {host}: {e}"
            ))),
        };
        METRICS.record_token_request(result.is_ok());
        let now = Instant::now();
        let mut state = self.lock();
        match result {
            Ok((value, lifetime)) => {
                let early = EARLY.min(lifetime / 10);
                let token = Token {
                    value,
                    generation: self.fetches.fetch_add(1, Ordering::Relaxed) + 1,
                    refresh_at: now + lifetime - early,
                };
                *state = State::Valid(token.clone());
                Ok(token)
            }
            Err(error) => {
                tracing::warn!(token_endpoint = %host, error = %error, "cannot get an OAuth2 token for a receiver");
                *state = State::Failed {
                    error: error.clone(),
                    until: now + FAILURE_HOLD,
                };
                Err(error)
            }
        }
    }

    /// The receiver refused `token` (401): the next delivery fetches a new one, unless
    /// another 401 already made it do so.
    pub(super) fn invalidate(&self, generation: u64) {
        let mut state = self.lock();
        if matches!(&*state, State::Valid(t) if t.generation == generation) {
            *state = State::Empty;
        }
    }

    /// `POST token_url` with `grant_type=client_credentials`, the scopes and audience, and
    /// the client's id and secret as `client_auth` says.
    fn request(&self) -> Result<(RequestHeader, Bytes), AttemptError> {
        let c = &self.config;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !c.scopes.is_empty() {
            form.append_pair("scope", &c.scopes.join(" "));
        }
        if let Some(audience) = &c.audience {
            form.append_pair("audience", audience);
        }
        if c.client_auth == ClientAuth::Body {
            form.append_pair("client_id", &c.client_id);
            form.append_pair("client_secret", c.client_secret.expose());
        }
        let body = Bytes::from(form.finish());
        let d = &self.destination;
        let mut request =
            RequestHeader::build("POST", d.path.as_bytes(), Some(6)).map_err(|e| e.to_string())?;
        let mut headers = vec![
            ("Host", d.host_header()),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
            ("Content-Length", body.len().to_string()),
            ("Accept", "application/json".into()),
        ];
        if c.client_auth == ClientAuth::Basic {
            // RFC 6749 §2.3.1: each form-encoded, then Basic.
            let encode =
                |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!(
                "{}:{}",
                encode(&c.client_id),
                encode(c.client_secret.expose())
            );
            headers.push((
                "Authorization",
                format!("Basic {}", base64_encode(pair.as_bytes())),
            ));
        }
        for (name, value) in headers {
            request
                .insert_header(name, value)
                .map_err(|e| e.to_string())?;
        }
        Ok((request, body))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The access token and how long it may be used, from a token endpoint's answer (RFC
/// 6749 §5.1), or why there is none (§5.2's `error` code, never the description, which
/// a server may fill with what it was sent).
fn parse_answer(status: u16, body: &[u8]) -> Result<(String, Duration), String> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if !(200..300).contains(&status) {
        let code = json["error"]
            .as_str()
            .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()))
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        return Err(format!("answered {status}{code}"));
    }
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty() && t.len() <= 8192 && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or("the answer holds no usable access_token")?;
    if let Some(kind) = json["token_type"].as_str() {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("token_type {kind:?} is not Bearer"));
        }
    }
    let lifetime = match &json["expires_in"] {
        serde_json::Value::Number(n) => n.as_u64().map(Duration::from_secs),
        serde_json::Value::String(s) => s.parse().ok().map(Duration::from_secs),
        _ => None,
    };
    Ok((token.to_string(), lifetime.unwrap_or(NO_EXPIRY)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn source() -> TokenSource {
        TokenSource::new(OAuth2 {
            token_url: "http://127.0.0.1:1/token".into(),
            client_id: "id".into(),
            client_secret: Secret::new("s3cret"),
            scopes: vec!["a".into(), "b:c".into()],
            audience: None,
            client_auth: ClientAuth::Basic,
        })
        .unwrap()
    }

    #[test]
    fn answers_give_a_token_or_an_error_without_the_servers_description() {
        let ok = br#"{"access_token":"t1","token_type":"bearer","expires_in":"60"}"#;
        assert_eq!(
            parse_answer(200, ok).unwrap(),
            ("t1".into(), Duration::from_secs(60))
        );
        let no_expiry = br#"{"access_token":"t1"}"#;
        assert_eq!(parse_answer(200, no_expiry).unwrap().1, NO_EXPIRY);
        let refused = br#"{"error":"invalid_client","error_description":"secret s3cret is wrong"}"#;
        assert_eq!(
            parse_answer(401, refused).unwrap_err(),
            "answered 401 (invalid_client)"
        );
        assert!(parse_answer(200, b"not json").is_err());
        assert!(parse_answer(200, br#"{"access_token":"a b"}"#).is_err());
        assert!(parse_answer(200, br#"{"access_token":"t","token_type":"mac"}"#).is_err());
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_a_401_drops_that_token_once() {
        let source = std::sync::Arc::new(source());
        let calls = std::sync::Arc::new(AtomicU64::new(0));
        let fetch = |calls: std::sync::Arc<AtomicU64>| {
            move |_: RequestHeader, _: Bytes| async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let body = format!(r#"{{"access_token":"t{n}","expires_in":3600}}"#);
                Ok((200, body.into_bytes()))
            }
        };
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let (source, calls) = (source.clone(), calls.clone());
                tokio::spawn(async move { source.token(fetch(calls)).await.ok().unwrap().value })
            })
            .collect();
        for task in waiting {
            assert_eq!(task.await.unwrap(), "t1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let first = source.token(fetch(calls.clone())).await.ok().unwrap();
        source.invalidate(first.generation);
        let second = source.token(fetch(calls.clone())).await.ok().unwrap();
        source.invalidate(first.generation); // a late 401 with the old token
        let third = source.token(fetch(calls.clone())).await.ok().unwrap();
        assert_eq!((second.value.as_str(), third.value.as_str()), ("t2", "t2"));
    }

    #[test]
    fn the_request_carries_the_grant_scopes_and_basic_credentials() {
        let (request, body) = source().request().ok().unwrap();
        assert_eq!(body, "grant_type=client_credentials&scope=a+b%3Ac");
        let authorization = request.headers.get("authorization").unwrap();
        // base64("id:s3cret"), computed with Python's base64 module.
        assert_eq!(authorization, "Basic aWQ6czNjcmV0");
    }
}
