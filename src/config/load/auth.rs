//! `auth:` on an endpoint, a YAML subscription or `outbound.destinations`: headers, Basic
//! or OAuth2 client credentials, every value a secret (`${ENV}`, `file:`).

use std::collections::BTreeMap;

use super::*;
use crate::config::auth::{BasicAuth, ClientAuth, OAuth2, ReceiverAuth};

impl Loader<'_> {
    pub(super) fn receiver_auth(&mut self, node: &Node, path: &str) -> Option<ReceiverAuth> {
        let f = self.fields(node, path, &["headers", "basic", "oauth2"])?;
        let headers = self.with_default(&f, "headers", BTreeMap::new(), |l, n, p| {
            let Value::Map(entries) = &n.value else {
                l.error(n.at, p, "expected a mapping of header names to values");
                return None;
            };
            let read: Vec<_> = entries
                .iter()
                .map(|(k, v)| l.secret(v, &join(p, &k.name)).map(|s| (k.name.clone(), s)))
                .collect();
            read.into_iter().collect::<Option<BTreeMap<_, _>>>()
        });
        let basic = self.optional(&f, "basic", |l, n, p| {
            let f = l.fields(n, p, &["user", "password"])?;
            let user = l
                .required(&f, "user")
                .and_then(|n| l.string(n, &f.path("user")));
            let password = l
                .required(&f, "password")
                .and_then(|n| l.secret(n, &f.path("password")));
            Some(BasicAuth {
                user: user?,
                password: password?,
            })
        });
        let oauth2 = self.optional(&f, "oauth2", Self::oauth2);
        let auth = ReceiverAuth {
            headers: headers?,
            basic: basic?,
            oauth2: oauth2?,
        };
        if let Err((field, message)) = auth.check() {
            let at = f
                .get(field.split('.').nth(1).unwrap_or(""))
                .map_or(node.at, |n| n.at);
            let field = format!("{path}{}", field.strip_prefix("auth").unwrap_or(&field));
            self.error(at, &field, message);
            return None;
        }
        Some(auth)
    }

    fn oauth2(&mut self, node: &Node, path: &str) -> Option<OAuth2> {
        let f = self.fields(
            node,
            path,
            &[
                "token_url",
                "client_id",
                "client_secret",
                "scopes",
                "audience",
                "client_auth",
            ],
        )?;
        let token_url = self.required(&f, "token_url").and_then(|n| {
            self.parsed(n, &f.path("token_url"), |s| {
                parse_destination(s).map(|_| s.to_string())
            })
        });
        let client_id = self
            .required(&f, "client_id")
            .and_then(|n| self.string(n, &f.path("client_id")));
        let client_secret = self
            .required(&f, "client_secret")
            .and_then(|n| self.secret(n, &f.path("client_secret")));
        let scopes = self.with_default(&f, "scopes", Vec::new(), |l, n, p| {
            l.each(n, p, Self::string)
        });
        let audience = self.optional(&f, "audience", Self::string);
        let client_auth = self.with_default(&f, "client_auth", ClientAuth::Basic, |l, n, p| {
            l.parsed(n, p, |s| match s {
                "basic" => Ok(ClientAuth::Basic),
                "body" => Ok(ClientAuth::Body),
                _ => Err(format!("expected basic or body, found {s:?}")),
            })
        });
        Some(OAuth2 {
            token_url: token_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            scopes: scopes?,
            audience: audience?,
            client_auth: client_auth?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(auth: &str) -> Result<Config, ConfigErrors> {
        let text = format!(
            "outbound:\n  endpoints:\n    - name: partner\n      url: https://hooks.partner.example/\n      sign: {{ scheme: standard-webhooks, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }}\n      auth: {auth}\n"
        );
        let env = |name: &str| (name == "KEY").then(|| "key-from-env".to_string());
        load_str("hookgate.yaml", &text, &env)
    }

    #[test]
    fn auth_values_are_secrets_and_a_bad_block_is_refused_where_it_is() {
        let config = load("{ headers: { X-Api-Key: \"${KEY}\" } }").unwrap();
        let auth = config.outbound.unwrap().endpoints[0].auth.clone().unwrap();
        assert_eq!(auth.headers["X-Api-Key"].expose(), "key-from-env");
        for (auth, path, message) in [
            (
                "{ basic: { user: u, password: p }, oauth2: { token_url: \"https://t.example/\", client_id: c, client_secret: s } }",
                "outbound.endpoints[0].auth",
                "basic and oauth2",
            ),
            (
                "{ headers: { Content-Length: \"1\" } }",
                "outbound.endpoints[0].auth.headers.Content-Length",
                "sets this header itself",
            ),
            (
                "{ oauth2: { token_url: \"https://t.example/\", client_id: c, client_secret: \"file:/nonexistent/s\" } }",
                "outbound.endpoints[0].auth.oauth2.client_secret",
                "cannot read secret file",
            ),
            (
                "{ oauth2: { token_url: \"https://t.example/\", client_id: c, client_secret: s, client_auth: jwt } }",
                "outbound.endpoints[0].auth.oauth2.client_auth",
                "expected basic or body",
            ),
            ("{ bearer: x }", "outbound.endpoints[0].auth.bearer", "unknown key"),
        ] {
            let errors = load(auth).unwrap_err().to_string();
            assert!(
                errors.contains(&format!("{path}: ")) && errors.contains(message),
                "{auth}: {errors}"
            );
        }
    }
}
