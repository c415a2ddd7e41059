//! What a config deserves to be told about without being refused: `hookgate check` prints
//! these as warnings and `hookgate run` logs them at start, with a summary of what it
//! serves.

use super::values::redact_url;
use super::{protection, Config, StoreConfig};

/// The example config's admin token: fine on a laptop, never past loopback.
pub const PLACEHOLDER_TOKEN: &str = "change-me";

/// Warnings about `config`, one line each.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let routes = config.inbound.as_ref().map_or(&[][..], |i| &i.routes[..]);
    warnings.extend(protection::suffix_risks(routes));
    if config
        .admin
        .token
        .as_ref()
        .is_some_and(|t| t.expose() == PLACEHOLDER_TOKEN)
    {
        warnings.push(format!(
            "admin.token is the example's placeholder {PLACEHOLDER_TOKEN:?}: anyone on this machine can use the admin API; set HOOKGATE_ADMIN_TOKEN"
        ));
    }
    warnings
}

/// What a running hookgate serves, for its first log lines: each listener, the console's
/// URL, and the store (a Redis URL without its password).
pub fn summary(config: &Config) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    if let Some(inbound) = &config.inbound {
        let scheme = if inbound.tls.is_some() {
            "https"
        } else {
            "http"
        };
        lines.push((
            "inbound",
            format!(
                "{scheme}://{} -> {} ({} routes)",
                inbound.listen,
                inbound.upstream,
                inbound.routes.len()
            ),
        ));
    }
    if let Some(listen) = config.outbound.as_ref().and_then(|o| o.listen) {
        lines.push(("outbound", format!("http://{listen}")));
    }
    let admin = config.admin.listen;
    lines.push((
        "admin",
        format!("http://{admin} (/healthz /readyz /metrics)"),
    ));
    if config.admin.token.is_some() {
        lines.push(("console", format!("http://{admin}/ui/")));
    }
    lines.push((
        "store",
        match &config.store {
            StoreConfig::Embedded { path, .. } => format!("embedded, {}", path.display()),
            StoreConfig::Redis(redis) => format!(
                "redis{}, {}",
                if redis.cluster { " cluster" } else { "" },
                redact_url(redis.url.expose())
            ),
        },
    ));
    lines
}
