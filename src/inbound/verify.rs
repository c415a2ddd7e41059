//! Stage 3 of the inbound path: check the sender's signature over the raw body.

use pingora::http::RequestHeader;

use crate::config::{Verify, VerifyConfig};
use crate::error_response::ErrorResponse;
use crate::schemes::{Request, Verified, Verifier};

/// A route's verification, built once at start-up.
pub struct RouteVerifier {
    /// `None` for `verify: none`.
    verifier: Option<(Verifier, VerifyConfig)>,
}

/// What the app is told about a request that passed.
pub struct Passed {
    /// The scheme's name, or `none`.
    pub scheme: String,
    pub verified: Option<Verified>,
    /// Headers carrying static credentials, to remove before forwarding.
    pub strip: &'static [&'static str],
}

impl RouteVerifier {
    pub fn new(verify: &Verify) -> Result<Self, String> {
        let verifier = match verify {
            Verify::None => None,
            Verify::Scheme(config) => {
                let secrets: Vec<&str> = config.secrets.iter().map(|s| s.expose()).collect();
                Some((
                    Verifier::new(&config.scheme, &secrets, config.tolerance)?,
                    (**config).clone(),
                ))
            }
        };
        Ok(RouteVerifier { verifier })
    }

    /// The scheme's delivery-id header, if it has one.
    pub fn id_header(&self) -> Option<&str> {
        self.verifier.as_ref().and_then(|(v, _)| v.id_header())
    }

    pub fn check(
        &self,
        header: &RequestHeader,
        body: &[u8],
        now: u64,
    ) -> Result<Passed, ErrorResponse> {
        let Some((verifier, config)) = &self.verifier else {
            return Ok(Passed {
                scheme: "none".to_string(),
                verified: None,
                strip: &[],
            });
        };
        // Only URL-signing schemes need the URL; the others skip building it.
        let url = match (&config.url, config.scheme.signs_url()) {
            (_, false) => None,
            (Some(url), true) => Some(std::borrow::Cow::Borrowed(url.as_str())),
            (None, true) => Some(std::borrow::Cow::Owned(public_url(header))),
        };
        let request = Request {
            method: header.method.as_str(),
            url: url.as_deref(),
            headers: &header.headers,
            body,
        };
        match verifier.verify(&request, now) {
            Ok(verified) => Ok(Passed {
                scheme: config.scheme_name().to_string(),
                verified: Some(verified),
                strip: if config.keep_credentials {
                    &[]
                } else {
                    verifier.credential_headers()
                },
            }),
            Err(e) => Err(ErrorResponse::new(e.status(), e.code(), e.to_string())),
        }
    }
}

/// The URL the sender most likely signed, from the request as it arrived here:
/// X-Forwarded-Proto (default http), Host, path and query.
fn public_url(header: &RequestHeader) -> String {
    let value = |name: &str| header.headers.get(name).and_then(|v| v.to_str().ok());
    let proto = value("x-forwarded-proto")
        .and_then(|p| p.split(',').next())
        .map_or("http", str::trim);
    let host = value("host")
        .or_else(|| header.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let path = header.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{proto}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_follows_forwarded_proto_and_host() {
        let mut header = RequestHeader::build("POST", b"/hooks/twilio?x=1", None).unwrap();
        header.insert_header("Host", "hooks.example.com").unwrap();
        assert_eq!(
            public_url(&header),
            "http://hooks.example.com/hooks/twilio?x=1"
        );
        header
            .insert_header("X-Forwarded-Proto", "https, http")
            .unwrap();
        assert_eq!(
            public_url(&header),
            "https://hooks.example.com/hooks/twilio?x=1"
        );
    }
}
