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
    if config.outbound.is_some() && config.store_encryption.is_none() {
        warnings.push("store.encryption is not set: subscriptions' signing secrets and auth, inline Hookgate-Secrets, payloads and receivers' answers are stored in clear".to_string());
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

/// What the store keeps of the outbound side and for how long, for `hookgate check`.
pub fn retention(config: &Config) -> Option<String> {
    let outbound = config.outbound.as_ref()?;
    let history = &outbound.history;
    let payloads = match history.payload_retention.is_zero() {
        true => "none of their payloads".to_string(),
        false => format!("their payloads {}", span(history.payload_retention)),
    };
    Some(format!(
        "retention: delivered messages {} ({payloads}), at most {} MiB; dead letters {}",
        span(history.retention),
        history.max_bytes >> 20,
        span(outbound.dead_letter_ttl),
    ))
}

/// A duration in its largest whole unit: `14d`, `36h`, `90s`.
fn span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
