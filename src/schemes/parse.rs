//! Strict header reading shared by the schemes: a header that must appear once appears
//! exactly once, and timestamps are in the one format their scheme says.

use http::{HeaderMap, HeaderName};

use super::VerifyError;

/// The value of a header that may appear at most once.
pub fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader {
            header: name.to_string(),
        });
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| VerifyError::UnreadableHeader {
            header: name.to_string(),
        })
}

/// The signature header, which must be present exactly once.
pub fn signature<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, VerifyError> {
    match single(headers, name)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(VerifyError::MissingSignature {
            header: name.to_string(),
        }),
    }
}

/// Another header the scheme cannot do without (an id, a timestamp).
pub fn required<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, VerifyError> {
    match single(headers, name)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(VerifyError::MissingHeader {
            header: name.to_string(),
        }),
    }
}

/// Unix seconds, digits only.
pub fn timestamp(text: &str) -> Result<u64, VerifyError> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp {
            detail: format!("expected unix seconds, found {:?}", truncate(text)),
        });
    }
    text.parse().map_err(|_| VerifyError::MalformedTimestamp {
        detail: "out of range".to_string(),
    })
}

/// How a scheme writes its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampFormat {
    /// Unix seconds, digits only (most providers).
    #[default]
    UnixSeconds,
    /// Unix milliseconds, digits only (WorkOS, Sanity, Webflow).
    UnixMillis,
    /// RFC 3339, such as `2026-01-01T00:00:00Z` (Twitch, Zendesk, Box).
    Rfc3339,
}

impl TimestampFormat {
    pub fn parse_name(name: &str) -> Result<Self, String> {
        match name {
            "unix" => Ok(TimestampFormat::UnixSeconds),
            "unix_ms" => Ok(TimestampFormat::UnixMillis),
            "rfc3339" => Ok(TimestampFormat::Rfc3339),
            other => Err(format!(
                "expected unix, unix_ms or rfc3339, found {other:?}"
            )),
        }
    }

    /// The timestamp `text` gives, in unix seconds.
    pub fn read(self, text: &str) -> Result<u64, VerifyError> {
        match self {
            TimestampFormat::UnixSeconds => timestamp(text),
            TimestampFormat::UnixMillis => timestamp(text).map(|ms| ms / 1000),
            TimestampFormat::Rfc3339 => chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .and_then(|t| u64::try_from(t.timestamp()).ok())
                .ok_or_else(|| VerifyError::MalformedTimestamp {
                    detail: format!("expected an RFC 3339 time, found {:?}", truncate(text)),
                }),
        }
    }

    /// Unix seconds written this way, for signing.
    pub fn write(self, seconds: u64) -> String {
        match self {
            TimestampFormat::UnixSeconds => seconds.to_string(),
            TimestampFormat::UnixMillis => (seconds * 1000).to_string(),
            TimestampFormat::Rfc3339 => chrono::DateTime::from_timestamp(seconds as i64, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
        }
    }
}

/// Shortens attacker-controlled text before it goes into an error message.
pub fn truncate(text: &str) -> &str {
    match text.char_indices().nth(32) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_timestamp_format_reads_its_own_and_refuses_the_others() {
        let rfc = TimestampFormat::Rfc3339;
        assert_eq!(rfc.read("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600);
        assert_eq!(
            rfc.read("2025-12-31T16:00:00.123456789-08:00").unwrap(),
            1_767_225_600
        );
        assert_eq!(rfc.write(1_767_225_600), "2026-01-01T00:00:00Z");
        for bad in [
            "1767225600",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(rfc.read(bad).is_err(), "{bad:?}");
        }
        let ms = TimestampFormat::UnixMillis;
        assert_eq!(ms.read("1767225600999").unwrap(), 1_767_225_600);
        assert_eq!(ms.write(1_767_225_600), "1767225600000");
        assert!(ms.read("1767225600.5").is_err());
        assert!(TimestampFormat::UnixSeconds
            .read("2026-01-01T00:00:00Z")
            .is_err());
        assert!(TimestampFormat::parse_name("iso").is_err());
        assert_eq!(TimestampFormat::parse_name("unix_ms"), Ok(ms));
    }
}
