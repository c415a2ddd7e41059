//! Parsers for the small value languages of the config file: durations (`30s`),
//! sizes (`1MiB`), rates (`100/min`), `${VAR}` interpolation and the parts of HTTP URLs.

use std::net::IpAddr;

use super::Destination;
use std::time::Duration;

/// The longest duration any setting takes: longer ones are surely typos, and every deadline
/// and expiry computed from a setting then stays far inside what clocks can represent.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// The shortest time a rate may give one request (at most a million per second): rate
/// limiters count in whole microseconds or nanoseconds, and need a period above zero.
pub const MIN_RATE_PERIOD: Duration = Duration::from_micros(1);

/// The longest event type.
const MAX_EVENT_TYPE: usize = 256;

/// An event type as subscribed to: a name, `prefix.*`, or `*`.
pub fn event_type_pattern(pattern: &str) -> Result<(), String> {
    let name = match pattern.strip_suffix('*') {
        Some("") => return Ok(()),
        Some(prefix) if prefix.ends_with('.') => &prefix[..prefix.len() - 1],
        Some(_) => return Err("a wildcard is * or ends in .* (such as application.*)".into()),
        None => pattern,
    };
    event_type(name)
}

/// An event type as published: printable, without spaces or `*`.
pub fn event_type(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_EVENT_TYPE {
        return Err(format!("an event type has 1 to {MAX_EVENT_TYPE} bytes"));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic() && b != b'*') {
        return Err(format!(
            "{name:?}: an event type is printable ASCII without spaces or *"
        ));
    }
    Ok(())
}

/// A JSON number that is a whole, non-negative number however it was written (`5`, `5.0`,
/// `5e0`), as JSON Schema's `integer` has it.
pub fn whole_number(value: &serde_json::Value) -> Option<u64> {
    let n = value.as_number()?;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(f))
            .map(|f| f as u64)
    })
}

/// The longest tenant name.
pub const MAX_TENANT: usize = 128;

/// A tenant's name: 1 to 128 of `A-Z a-z 0-9 . _ : -`. The same everywhere a tenant is
/// named (the API, the file's subscriptions, `Hookgate-Tenant`, a body field), so a name
/// one side accepts is never one another side reads differently.
pub fn tenant(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TENANT {
        return Err(format!("a tenant has 1 to {MAX_TENANT} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(format!(
            "{:?}: a tenant is made of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
            name.chars().take(32).collect::<String>()
        ));
    }
    Ok(())
}

/// A label's name, as it appears in a `Hookgate-Label-<name>` header.
pub fn valid_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `500ms`, `30s`, `2m`, `24h`, `7d`, or a sum such as `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as 500ms, 30s, 2m, 24h or 1h30m";
    let text = text.trim();
    if text.is_empty() {
        return Err(EXPECTED.to_string());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{EXPECTED}, found {text:?}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{EXPECTED}, found {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("{EXPECTED}, found {text:?}")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(Duration::from_millis(ms)))
            .filter(|total| *total <= MAX_DURATION)
            .ok_or_else(|| format!("duration {text:?} is too long: at most 365d"))?;
    }
    Ok(total)
}

/// `1MiB`, `512KiB`, `10MB`, `100B` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a size such as 64KiB, 1MiB or 10MB";
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return Err(format!("{EXPECTED}, found {text:?}"));
    }
    let number: u64 = text[..digits]
        .parse()
        .map_err(|_| format!("{EXPECTED}, found {text:?}"))?;
    let multiplier: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("{EXPECTED}, found {text:?}")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// A rate such as `100/min`: `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The time one event takes of the rate: at least [`MIN_RATE_PERIOD`] when parsed.
    pub fn per_request(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

/// `100/min`, `10/s`, `5000/h`, `20000/d`, or a window such as `5/10s`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let expected = format!("expected a rate such as 100/min, 10/s or 5000/h, found {text:?}");
    let (count, unit) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| expected.clone())?;
    let count: u32 = count.trim().parse().map_err(|_| expected.clone())?;
    if count == 0 {
        return Err(format!(
            "a rate must allow at least 1 request, found {text:?}"
        ));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3_600),
        "d" | "day" => Duration::from_secs(86_400),
        window => parse_duration(window).map_err(|_| expected.clone())?,
    };
    if per.is_zero() {
        return Err(expected);
    }
    let rate = Rate { count, per };
    if rate.per_request() < MIN_RATE_PERIOD {
        return Err(format!(
            "rate {text:?} is too fast: at most 1000000/s (one request per microsecond)"
        ));
    }
    Ok(rate)
}

/// Replaces `${NAME}` and `${NAME:-default}` with values from `lookup`; `$${` is a literal `${`.
/// A missing variable without a default is an error naming it (never its value).
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| {
                format!("unclosed \"${{\" in {text:?}: write ${{NAME}} or $${{ for a literal")
            })?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid_name = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(format!(
                    "invalid variable name {name:?} in \"${{{inner}}}\""
                ));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    ))
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// An `http://` or `https://` URL's scheme, matched without regard to case as RFC 3986
/// asks: whether it is TLS, and the rest of the URL.
pub fn http_scheme(url: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.eq_ignore_ascii_case("https") {
        Some((true, rest))
    } else if scheme.eq_ignore_ascii_case("http") {
        Some((false, rest))
    } else {
        None
    }
}

/// The host (brackets of an IPv6 literal removed) and port, if given, of an authority
/// such as `example.com:8443`, `[2001:db8::1]` or `[::1]:80`.
pub fn host_and_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => None,
        Some(port) => Some(port.parse::<u16>().ok()?),
    };
    (!host.is_empty()).then_some((host, port))
}

/// `url` with the password of any `user:password@` replaced, for error messages.
/// A URL as an operator may see it anywhere: no user or password, and no query (receivers
/// often put tokens there), which shows as `?…`.
pub fn display_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let host_start = url[start..authority_end]
        .rfind('@')
        .map_or(start, |at| start + at + 1);
    let rest = &url[authority_end..];
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let query = if rest.contains('?') { "?…" } else { "" };
    format!(
        "{}{}{path}{query}",
        &url[..start],
        &url[host_start..authority_end]
    )
}

pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{}{user}:***{}", &url[..start], &url[start + at..])
        }
        None => url.to_string(),
    }
}

/// An HTTP header name (RFC 9110 token).
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Destination {
    /// The `Host` header for it: the host alone on the scheme's default port.
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `https://host[:port]/path?query`; the scheme in any case, IPv6 hosts in brackets.
pub fn parse_destination(s: &str) -> Result<Destination, String> {
    let expected = || {
        format!(
            "expected a URL such as https://hooks.example.com/path, found {:?}",
            redact_url(s)
        )
    };
    if let Some(at) = s.find(|c: char| !uri_char(c)) {
        let c = s[at..].chars().next().unwrap_or_default();
        return Err(format!(
            "a URL cannot hold {c:?} (at byte {at}): percent-encode it, as %{:02X} for one byte",
            u32::from(c).min(0xff)
        ));
    }
    if let Some(at) = s.match_indices('%').map(|(i, _)| i).find(|&i| {
        !s.as_bytes()
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    }) {
        return Err(format!(
            "a % in a URL is followed by two hex digits (at byte {at})"
        ));
    }
    let (tls, rest) = http_scheme(s).ok_or_else(expected)?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (host, port) = host_and_port(authority).ok_or_else(expected)?;
    if host.contains(['@', ' ', '[', ']']) {
        return Err(expected());
    }
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Destination {
        tls,
        host: host.to_string(),
        port: port.unwrap_or(if tls { 443 } else { 80 }),
        path,
    })
}

/// What a URL may hold as it is (RFC 3986): letters, digits, `-._~`, the delimiters and
/// `%`. Spaces, quotes, `<>`, control characters (CR, LF) and non-ASCII would make every
/// delivery fail, or worse, split the request line; a fragment is never sent.
fn uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?[]@!$&'()*+,;=%".contains(c)
}

/// Whether `pattern` (a name, `prefix.*` or `*`) takes `event_type`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        assert_eq!(
            display_url("https://u:p@hooks.example.com:8443/in/a?token=s3cret#x"),
            "https://hooks.example.com:8443/in/a?…"
        );
        assert_eq!(display_url("http://h/path"), "http://h/path");
        assert_eq!(display_url("http://h"), "http://h");
    }

    #[test]
    fn tenants_are_a_small_ascii_charset() {
        for good in ["acme", "a", "Acme-1.eu_west:2", &"x".repeat(128)] {
            assert!(tenant(good).is_ok(), "{good}");
        }
        for bad in ["", "münchen", "a b", "a/b", "a\nb", "*", &"x".repeat(129)] {
            assert!(tenant(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn url_parts() {
        assert_eq!(http_scheme("HTTPS://x"), Some((true, "x")));
        assert_eq!(http_scheme("Http://x"), Some((false, "x")));
        assert_eq!(http_scheme("ftp://x"), None);
        assert_eq!(host_and_port("[2001:db8::1]"), Some(("2001:db8::1", None)));
        assert_eq!(host_and_port("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(host_and_port("example.com"), Some(("example.com", None)));
        assert_eq!(
            host_and_port("example.com:99"),
            Some(("example.com", Some(99)))
        );
        for bad in ["", "[::1", "[::1]x", "a:b", ":80", "a:99999", "[::1]:"] {
            assert_eq!(host_and_port(bad), None, "{bad}");
        }
        assert_eq!(
            redact_url("redis://user:hunter2@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(redact_url("redis://:hunter2@h"), "redis://:***@h");
        assert_eq!(redact_url("https://h/p@q"), "https://h/p@q");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "30", "s", "3x", "1.5s", "-1s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512"), Ok(512));
        for bad in ["", "MiB", "1 TiB", "1.5MiB", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rates() {
        let per_min = Rate {
            count: 100,
            per: Duration::from_secs(60),
        };
        assert_eq!(parse_rate("100/min"), Ok(per_min));
        assert_eq!(parse_rate("5/10s").unwrap().per, Duration::from_secs(10));
        for bad in ["100", "0/s", "x/min", "10/fortnight", "10/0s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn interpolation() {
        let env = |name: &str| match name {
            "SECRET" => Some("s3cr3t".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(interpolate("${SECRET}", &env).unwrap(), "s3cr3t");
        assert_eq!(interpolate("a-${SECRET}-b", &env).unwrap(), "a-s3cr3t-b");
        assert_eq!(interpolate("${MISSING:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(interpolate("${EMPTY:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(
            interpolate("$${SECRET} costs $5", &env).unwrap(),
            "${SECRET} costs $5"
        );
        let err = interpolate("${MISSING}", &env).unwrap_err();
        assert!(err.contains("MISSING is not set"), "{err}");
        assert!(interpolate("${SECRET", &env).is_err());
        assert!(interpolate("${1BAD}", &env).is_err());
    }
}

/// A CIDR block from `outbound.allow_private_destinations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("expected a CIDR such as 10.0.0.0/8, found {text:?}"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix length in {text:?}"))?
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}
