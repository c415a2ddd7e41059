//! `admin:`: the admin listener, its token, and the tenants' portal.

use super::*;
use crate::config::portal::{self, PortalConfig, MIN_SIGNING_KEY};

impl Loader<'_> {
    pub(super) fn admin(&mut self, node: &Node, path: &str) -> Option<AdminConfig> {
        let f = self.fields(
            node,
            path,
            &["listen", "token", "recent_refusals", "portal"],
        )?;
        let default_listen = DEFAULT_ADMIN_LISTEN.parse().expect("valid default");
        let listen = self.with_default(&f, "listen", default_listen, Self::socket_addr);
        let token = self.optional(&f, "token", Self::secret);
        let recent_refusals = self.with_default(&f, "recent_refusals", 500, |l, n, p| {
            l.whole(n, p, 0..=100_000).map(|n| n as usize)
        });
        let portal = self.optional(&f, "portal", Self::portal);
        let (listen, token, portal) = (listen?, token?, portal?);
        // Past loopback, the example's token would be anyone's admin API.
        if token
            .as_ref()
            .is_some_and(|t| t.expose() == crate::config::notices::PLACEHOLDER_TOKEN)
            && !listen.ip().is_loopback()
        {
            let at = f.get("token").map_or(f.at, |n| n.at);
            self.error(
                at,
                &f.path("token"),
                format!(
                    "\"{}\" is the example's placeholder and admin.listen ({listen}) is not on loopback: set a real token (HOOKGATE_ADMIN_TOKEN)",
                    crate::config::notices::PLACEHOLDER_TOKEN
                ),
            );
            return None;
        }
        Some(AdminConfig {
            listen,
            token,
            recent_refusals: recent_refusals?,
            portal,
        })
    }

    fn portal(&mut self, node: &Node, path: &str) -> Option<PortalConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "signing_key",
                "listen",
                "public_url",
                "frame_ancestors",
                "title",
                "accent",
            ],
        )?;
        let signing_key = self
            .required(&f, "signing_key")
            .and_then(|n| self.secret(n, &f.path("signing_key")));
        if let (Some(key), Some(node)) = (&signing_key, f.get("signing_key")) {
            if key.expose().len() < MIN_SIGNING_KEY {
                self.error(
                    node.at,
                    &f.path("signing_key"),
                    format!(
                        "at least {MIN_SIGNING_KEY} bytes (make one with: openssl rand -base64 32)"
                    ),
                );
                return None;
            }
        }
        let listen = self.optional(&f, "listen", Self::socket_addr);
        let public_url = self.optional(&f, "public_url", |l, n, p| {
            l.parsed(n, p, |s| {
                parse_destination(s).map(|_| s.trim_end_matches('/').to_string() + "/")
            })
        });
        let frame_ancestors = self.with_default(&f, "frame_ancestors", Vec::new(), |l, n, p| {
            l.each(n, p, |l, n, p| {
                l.parsed(n, p, |s| portal::frame_ancestor(s).map(|_| s.to_string()))
            })
        });
        let title = self.with_default(&f, "title", "Webhooks".to_string(), |l, n, p| {
            l.parsed(n, p, |s| match s.chars().count() {
                1..=80 => Ok(s.to_string()),
                _ => Err("expected 1 to 80 characters".to_string()),
            })
        });
        let accent = self.with_default(&f, "accent", "#2563eb".to_string(), |l, n, p| {
            l.parsed(n, p, |s| portal::accent(s).map(|_| s.to_string()))
        });
        Some(PortalConfig {
            signing_key: signing_key?,
            listen: listen?,
            public_url: public_url?,
            frame_ancestors: frame_ancestors?,
            title: title?,
            accent: accent?,
        })
    }

    /// The portal manages outbound subscriptions, with tokens the admin API issues.
    pub(super) fn check_portal(&mut self, config: &Config, top: &Fields) {
        if config.admin.portal.is_none() {
            return;
        }
        let at = top.get("admin").map_or(top.at, |n| n.at);
        if config.outbound.is_none() {
            self.error(
                at,
                "admin.portal",
                "the portal manages outbound subscriptions: configure outbound",
            );
        }
        if config.admin.token.is_none() {
            self.error(
                at,
                "admin.portal",
                "portal tokens are issued through the admin API: set admin.token",
            );
        }
    }
}
