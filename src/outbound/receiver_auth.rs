//! What a receiver gets on top of the signature (`auth:`): fixed headers such as an API
//! key, Basic, or a bearer token from OAuth2 client credentials.

use super::oauth2::TokenSource;
use crate::config::ReceiverAuth;
use crate::schemes::crypto::base64_encode;

pub struct Credentials {
    /// Sent as they are; Basic is one of them.
    pub fixed: Vec<(String, String)>,
    pub oauth2: Option<TokenSource>,
}

impl Credentials {
    pub fn new(auth: &ReceiverAuth) -> Result<Self, String> {
        let mut fixed: Vec<(String, String)> = auth
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_string()))
            .collect();
        if let Some(basic) = &auth.basic {
            let pair = format!("{}:{}", basic.user, basic.password.expose());
            fixed.push((
                "Authorization".into(),
                format!("Basic {}", base64_encode(pair.as_bytes())),
            ));
        }
        let oauth2 = auth.oauth2.clone().map(TokenSource::new).transpose()?;
        Ok(Credentials { fixed, oauth2 })
    }

    /// The headers it adds, which a delivery's page masks.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        let bearer = self.oauth2.as_ref().map(|_| "authorization".to_string());
        self.fixed
            .iter()
            .map(|(name, _)| name.clone())
            .chain(bearer)
    }
}
