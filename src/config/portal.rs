//! `admin.portal`: the tenants' portal, where a vendor's customers manage their own
//! subscriptions with a token the vendor issues them (`POST /admin/tenants/{t}/portal`).

use std::net::SocketAddr;

use super::Secret;

#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Signs the tenants' tokens (HMAC-SHA256); changing it refuses every token issued.
    pub signing_key: Secret,
    /// Serves `/portal/` (and nothing of the admin API) on an address of its own.
    pub listen: Option<SocketAddr>,
    /// Where the links point (`https://hooks.vendor.example/portal/`); by default the
    /// portal's listener (or the admin one) on http.
    pub public_url: Option<String>,
    /// The origins that may show the portal in a frame (CSP `frame-ancestors`); none by default.
    pub frame_ancestors: Vec<String>,
    /// The portal's heading.
    pub title: String,
    /// The portal's accent colour, `#rgb` or `#rrggbb`.
    pub accent: String,
}

/// The shortest signing key: 32 bytes, as `openssl rand -base64 32` makes (44 characters).
pub const MIN_SIGNING_KEY: usize = 32;

/// An origin a CSP `frame-ancestors` may name: `https://host[:port]`, the host possibly
/// `*.`-prefixed. Nothing else, so a value cannot add a directive to the policy.
pub fn frame_ancestor(origin: &str) -> Result<(), String> {
    let bad = || format!("expected an origin such as https://app.vendor.example, found {origin:?}");
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `#rgb` or `#rrggbb`.
pub fn accent(colour: &str) -> Result<(), String> {
    match colour.strip_prefix('#') {
        Some(hex) if matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(())
        }
        _ => Err(format!(
            "expected a colour such as #2563eb, found {colour:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_origins_may_frame_the_portal() {
        for good in [
            "https://app.vendor.example",
            "https://*.vendor.example",
            "http://localhost:8080",
        ] {
            assert!(frame_ancestor(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "'self'",
            "https://a.example; script-src *",
            "https://a.example/path",
            "ftp://a.example",
            "https://",
            "https://a..example",
            "https://a.example:0",
            "https://a.example:99999",
        ] {
            assert!(frame_ancestor(bad).is_err(), "{bad}");
        }
        assert!(accent("#2563eb").is_ok() && accent("#abc").is_ok());
        for bad in ["2563eb", "#12345", "red", "#zzz", "#abc;x"] {
            assert!(accent(bad).is_err(), "{bad}");
        }
    }
}
