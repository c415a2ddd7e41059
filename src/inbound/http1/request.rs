//! A client's request head on an HTTP/1 connection: read within the head limits, parsed
//! by `httparse` (which refuses obs-folds, bare CRs and control bytes), and checked for
//! what request smuggling relies on: `Content-Length` and `Transfer-Encoding` together,
//! two lengths, a length that is not plain digits, a transfer coding other than `chunked`,
//! two `Host` fields.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use pingora::http::RequestHeader;

use super::body::{parse_length, Framing};
use super::{head_may_end, Connection};
use crate::config::ConnectionLimits;
use crate::error_response::ErrorResponse;

/// More header fields than `inbound.max_headers` can ever allow (250).
const MAX_FIELDS: usize = 251;

/// A request head, parsed and checked.
pub struct Request {
    pub header: RequestHeader,
    pub framing: Framing,
    /// The client may send another request on this connection after this one.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub expects_continue: bool,
}

pub enum HeadError {
    /// The client closed or the connection failed before a whole head: nothing to answer.
    Gone,
    /// A head hookgate answers with this error, then closes the connection.
    Refused(ErrorResponse),
}

/// Reads the next request head. `None`: the client closed the connection between requests.
pub async fn read(
    conn: &mut Connection,
    limits: &ConnectionLimits,
) -> Result<Option<Request>, HeadError> {
    // The request line is bounded by `max_url`, the fields by `max_header_bytes`.
    let cap = (limits.max_url + limits.max_header_bytes) as usize + 1024;
    let mut searched: usize = 0;
    loop {
        // Parsing again only once a blank line may have arrived keeps a head trickled a
        // byte at a time from costing a parse per byte.
        let from = searched.saturating_sub(3);
        if head_may_end(&conn.read[from..]) {
            if let Some(request) = parse(conn, limits)? {
                return Ok(Some(request));
            }
        }
        searched = conn.read.len();
        if searched > cap {
            return Err(HeadError::Refused(too_large(&conn.read, limits)));
        }
        match conn.fill().await {
            Ok(true) => {}
            Ok(false) if conn.read.iter().all(u8::is_ascii_whitespace) => return Ok(None),
            Ok(false) | Err(_) => return Err(HeadError::Gone),
        }
    }
}

/// The answer to a head over the size caps: the request line alone is over `max_url`, or
/// the whole head over `max_header_bytes`.
fn too_large(read: &[u8], limits: &ConnectionLimits) -> ErrorResponse {
    let line_ended = read.contains(&b'\n');
    if !line_ended {
        return url_too_long(limits);
    }
    headers_too_large(limits)
}

fn url_too_long(limits: &ConnectionLimits) -> ErrorResponse {
    ErrorResponse::new(
        414,
        "url_too_long",
        format!(
            "the request target is longer than the limit of {} bytes",
            limits.max_url
        ),
    )
}

fn headers_too_large(limits: &ConnectionLimits) -> ErrorResponse {
    ErrorResponse::new(
        431,
        "headers_too_large",
        format!(
            "the request head is larger than the limit of {} bytes",
            limits.max_header_bytes
        ),
    )
}

fn bad_request(why: &str) -> HeadError {
    HeadError::Refused(ErrorResponse::new(
        400,
        "bad_request",
        format!("the request head is not valid HTTP/1.1: {why}"),
    ))
}

/// Where each part of a head lies in the connection's buffer.
struct Parts {
    method: Range<usize>,
    target: Range<usize>,
    version: u8,
    /// Each field's name and value.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

/// Parses a head at the start of `bytes` as [`read`] does once one has arrived, with the
/// number of bytes it takes; `None` if it is not complete. For the fuzzer and the tests.
pub fn parse_complete(
    bytes: &[u8],
    limits: &ConnectionLimits,
) -> Result<Option<(Request, usize)>, HeadError> {
    let Some((parts, len)) = locate(bytes, limits)? else {
        return Ok(None);
    };
    let request = build(&Bytes::copy_from_slice(&bytes[..len]), &parts)?;
    Ok(Some((request, len)))
}

/// Parses the buffer's head if it is complete, and takes it off the buffer.
fn parse(conn: &mut Connection, limits: &ConnectionLimits) -> Result<Option<Request>, HeadError> {
    let Some((parts, len)) = locate(&conn.read, limits)? else {
        return Ok(None);
    };
    let head = conn.read.split_to(len).freeze();
    build(&head, &parts).map(Some)
}

/// Finds the parts of a complete head in `read`, and the head's length.
fn locate(read: &[u8], limits: &ConnectionLimits) -> Result<Option<(Parts, usize)>, HeadError> {
    let mut fields = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(read, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Refused(too_many_headers(limits)))
        }
        Err(e) => return Err(bad_request(&e.to_string())),
    };
    // httparse takes a bare LF as a line end; a front proxy that splits lines only at CRLF
    // would read another head from the same bytes.
    if has_bare_lf(&read[..len]) {
        return Err(bad_request("a line ends in a bare LF, not CRLF"));
    }
    let base = read.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let parts = Parts {
        method: at(request.method.unwrap_or_default().as_bytes()),
        target: at(request.path.unwrap_or_default().as_bytes()),
        version: request.version.unwrap_or(1),
        fields: request
            .headers
            .iter()
            .map(|field| (at(field.name.as_bytes()), at(field.value)))
            .collect(),
    };
    Ok(Some((parts, len)))
}

/// Whether a LF in `head` is not preceded by a CR. Each byte is compared with the one
/// before it without stopping early, which the compiler turns into vector instructions.
fn has_bare_lf(head: &[u8]) -> bool {
    let after_first = head.iter().skip(1).zip(head);
    let inner = after_first.fold(false, |bare, (&b, &before)| {
        bare | ((b == b'\n') & (before != b'\r'))
    });
    inner || head.first() == Some(&b'\n')
}

fn too_many_headers(limits: &ConnectionLimits) -> ErrorResponse {
    ErrorResponse::new(
        431,
        "too_many_headers",
        format!(
            "the request has more than the limit of {} header fields",
            limits.max_headers
        ),
    )
}

/// The request head from its parts in `head`, with its framing, checked.
fn build(head: &Bytes, parts: &Parts) -> Result<Request, HeadError> {
    let method = Method::from_bytes(&head[parts.method.clone()])
        .map_err(|_| bad_request("invalid method"))?;
    let http10 = parts.version == 0;
    // The header map is filled here and handed over whole: `RequestHeader::append_header`
    // would parse each name a second time.
    let mut headers = HeaderMap::with_capacity(parts.fields.len());
    let mut length = None;
    let mut chunked = None;
    let mut hosts = 0;
    let mut close = false;
    let mut keep_alive = false;
    let mut expects_continue = false;
    for (name, value) in &parts.fields {
        let name = HeaderName::from_bytes(&head[name.clone()])
            .map_err(|_| bad_request("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value.clone()))
            .map_err(|_| bad_request("invalid header value"))?;
        match name {
            http::header::CONTENT_LENGTH => {
                if length.is_some() {
                    return Err(bad_request("more than one Content-Length"));
                }
                length = Some(content_length(value.as_bytes())?);
            }
            http::header::TRANSFER_ENCODING => {
                if chunked.is_some() {
                    return Err(bad_request("more than one Transfer-Encoding"));
                }
                // Only `chunked` alone: a coding hookgate cannot undo would leave the
                // body's end to whoever reads it next.
                if !value
                    .as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"chunked")
                {
                    return Err(bad_request("a Transfer-Encoding other than chunked"));
                }
                chunked = Some(());
            }
            http::header::HOST => hosts += 1,
            http::header::CONNECTION => {
                for option in value.as_bytes().split(|&b| b == b',') {
                    let option = option.trim_ascii();
                    close |= option.eq_ignore_ascii_case(b"close");
                    keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            http::header::EXPECT => {
                expects_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue")
            }
            _ => {}
        }
        headers
            .try_append(name, value)
            .map_err(|_| bad_request("too many header fields"))?;
    }
    let mut request = http::Request::new(()).into_parts().0;
    request.method = method;
    request.headers = headers;
    if http10 {
        request.version = Version::HTTP_10;
    }
    let mut header = RequestHeader::from(request);
    header
        .set_raw_path(&head[parts.target.clone()])
        .map_err(|_| bad_request("invalid request target"))?;
    if hosts > 1 {
        return Err(bad_request("more than one Host"));
    }
    // RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without Host.
    if hosts == 0 && !http10 {
        return Err(bad_request("no Host header (HTTP/1.1 requires one)"));
    }
    let framing = match (chunked, length) {
        (Some(()), Some(_)) => {
            return Err(bad_request("both Content-Length and Transfer-Encoding"))
        }
        (Some(()), None) if http10 => {
            return Err(bad_request("Transfer-Encoding in an HTTP/1.0 request"))
        }
        (Some(()), None) => Framing::Chunked,
        (None, Some(len)) => Framing::Length(len),
        (None, None) => Framing::Empty,
    };
    Ok(Request {
        header,
        framing,
        keep_alive: if http10 { keep_alive } else { !close },
        expects_continue: expects_continue && !http10,
    })
}

/// A `Content-Length` value: digits only, no sign, no list.
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    parse_length(value).ok_or_else(|| bad_request("Content-Length is not a length"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: None,
        max_connections_per_ip: None,
        max_url: 8 * 1024,
        max_headers: 100,
        max_header_bytes: 64 * 1024,
    };

    fn parse(head: &str) -> Result<Request, String> {
        match parse_complete(head.as_bytes(), &LIMITS) {
            Ok(Some((request, len))) => {
                assert_eq!(len, head.len());
                Ok(request)
            }
            Ok(None) => panic!("incomplete: {head:?}"),
            Err(HeadError::Refused(answer)) => Err(answer.message),
            Err(HeadError::Gone) => panic!("gone"),
        }
    }

    #[test]
    fn framing_and_connection_options() {
        let request =
            parse("POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(request.framing, Framing::Length(12));
        assert!(request.keep_alive);
        assert_eq!(request.header.uri.path(), "/a");
        assert_eq!(request.header.headers["host"], "x");
        let request = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(request.framing, Framing::Chunked);
        assert!(!request.keep_alive);
        assert!(request.expects_continue);
        let request = parse("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(request.framing, Framing::Empty);
        assert!(!request.keep_alive);
        assert_eq!(request.header.version, Version::HTTP_10);
        let request =
            parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nExpect: 100-continue\r\n\r\n")
                .unwrap();
        assert!(request.keep_alive);
        assert!(!request.expects_continue, "HTTP/1.0 has no 100 Continue");
    }

    #[test]
    fn what_smuggling_needs_is_refused() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0x1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
            "POST / HTTP/1.1\r\nX-A : 1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\n\n",
            "GET / HTTP/1.1\n\n",
        ] {
            assert!(parse(head).is_err(), "{head:?} was accepted");
        }
    }

    proptest::proptest! {
        /// A valid head with one byte changed, or cut short: never a panic, and a head
        /// that parses has one framing.
        #[test]
        fn mangled_heads_are_parsed_or_refused(at in 0usize..140, byte in proptest::prelude::any::<u8>(), cut in 0usize..140) {
            let head = b"POST /hooks/a?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n";
            let mut mangled = head.to_vec();
            if at < mangled.len() {
                mangled[at] = byte;
            }
            mangled.truncate(mangled.len() - cut.min(mangled.len()));
            if let Ok(Some((request, len))) = parse_complete(&mangled, &LIMITS) {
                proptest::prop_assert!(len <= mangled.len());
                let lengths = request.header.headers.get_all("content-length").iter().count();
                let codings = request.header.headers.get_all("transfer-encoding").iter().count();
                proptest::prop_assert!(lengths + codings <= 1, "{}", String::from_utf8_lossy(&mangled));
            }
        }

        #[test]
        fn arbitrary_bytes_are_parsed_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_complete(&bytes, &LIMITS);
        }
    }
}
