//! Strict header reading shared by the schemes: a header that must appear once appears
//! exactly once, and timestamps are plain unix seconds.

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

/// Shortens attacker-controlled text before it goes into an error message.
pub fn truncate(text: &str) -> &str {
    match text.char_indices().nth(32) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
