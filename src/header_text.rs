//! Reading a single-valued header as text, failing closed. A header that is present but
//! cannot be read (bytes outside visible ASCII, sent twice with two meanings, or empty)
//! is an error for the caller to answer, never the same as a header that was not sent:
//! a tenant, an idempotency key or a delivery id read as "absent" would route, store or
//! dedupe the request as something it is not.

use std::fmt;

use http::HeaderMap;

use crate::error_response::ErrorResponse;

/// Why a present header cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// A byte outside visible ASCII (raw UTF-8, obs-text, a control character).
    NotText,
    /// The header appears more than once.
    Repeated,
    /// Present, with nothing but whitespace.
    Empty,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unreadable::NotText => "is not visible ASCII text",
            Unreadable::Repeated => "appears more than once",
            Unreadable::Empty => "is empty",
        })
    }
}

/// The trimmed value of header `name`: `Ok(None)` only when it is not sent at all.
pub fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Unreadable> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Unreadable::Repeated);
    }
    let text = first.to_str().map_err(|_| Unreadable::NotText)?.trim();
    if text.is_empty() {
        return Err(Unreadable::Empty);
    }
    Ok(Some(text))
}

/// [`header_text`], with an unreadable header answered `400 <code>` naming the header.
pub fn header_or_400<'h>(
    headers: &'h HeaderMap,
    name: &str,
    code: &'static str,
) -> Result<Option<&'h str>, ErrorResponse> {
    header_text(headers, name).map_err(|why| {
        ErrorResponse::new(400, code, format!("the {name} header {why}")).with_field(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_a_header_not_sent_is_absent() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_text(&headers, "hookgate-tenant"), Ok(None));
        headers.insert("hookgate-tenant", HeaderValue::from_static(" acme "));
        assert_eq!(header_text(&headers, "hookgate-tenant"), Ok(Some("acme")));
        headers.insert(
            "hookgate-tenant",
            HeaderValue::from_bytes("münchen".as_bytes()).unwrap(),
        );
        assert_eq!(
            header_text(&headers, "hookgate-tenant"),
            Err(Unreadable::NotText)
        );
        headers.insert("hookgate-tenant", HeaderValue::from_static("  "));
        assert_eq!(
            header_text(&headers, "hookgate-tenant"),
            Err(Unreadable::Empty)
        );
        headers.insert("hookgate-tenant", HeaderValue::from_static("a"));
        headers.append("hookgate-tenant", HeaderValue::from_static("b"));
        assert_eq!(
            header_text(&headers, "hookgate-tenant"),
            Err(Unreadable::Repeated)
        );
    }
}
