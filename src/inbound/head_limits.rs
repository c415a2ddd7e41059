//! Stage 0 of the inbound path, with [`super::path`]: the request head itself. Its size,
//! its number of fields and its arrival time are bounded, and a head that cannot be parsed
//! gets a `400` instead of a silently closed connection ([`super::http1::request`]).

use std::time::Duration;

use pingora::http::RequestHeader;

use crate::config::ConnectionLimits;
use crate::error_response::ErrorResponse;

/// The first limit `head` is over, as the answer to give.
pub fn check(head: &RequestHeader, limits: &ConnectionLimits) -> Option<ErrorResponse> {
    let target = head.uri.path_and_query().map_or(0, |p| p.as_str().len()) as u64;
    if target > limits.max_url {
        return Some(ErrorResponse::new(
            414,
            "url_too_long",
            format!(
                "the request target is longer than the limit of {} bytes",
                limits.max_url
            ),
        ));
    }
    if head.headers.len() > limits.max_headers {
        return Some(ErrorResponse::new(
            431,
            "too_many_headers",
            format!(
                "the request has more than the limit of {} header fields",
                limits.max_headers
            ),
        ));
    }
    // Name, ": ", value and CRLF of each field.
    let size: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size as u64 + target > limits.max_header_bytes {
        return Some(ErrorResponse::new(
            431,
            "headers_too_large",
            format!(
                "the request head is larger than the limit of {} bytes",
                limits.max_header_bytes
            ),
        ));
    }
    None
}

/// The answer to a head that did not arrive whole in time.
pub fn header_timeout(deadline: Duration) -> ErrorResponse {
    ErrorResponse::new(
        408,
        "header_timeout",
        format!(
            "the request head did not arrive within {}s",
            deadline.as_secs_f64()
        ),
    )
}
