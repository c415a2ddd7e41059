#![no_main]
// A request head as it arrives: parsed by httparse as Pingora does, then through
// hookgate's checks before routing (path, limits) and the builder of the request the app
// receives. Any panic is a bug; and what the app receives is framed by one
// Content-Length, with no hop-by-hop header and no hookgate header the client sent.
use hookgate::config::ConnectionLimits;
use hookgate::inbound::{forward, head_limits, path};
use pingora::http::RequestHeader;
use std::time::Duration;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(data) else { return };
    let Ok(mut head) = RequestHeader::build(
        parsed.method.unwrap_or(""),
        parsed.path.unwrap_or("").as_bytes(),
        Some(parsed.headers.len()),
    ) else {
        return;
    };
    for header in parsed.headers.iter() {
        let Ok(name) = http::HeaderName::from_bytes(header.name.as_bytes()) else { return };
        let Ok(value) = http::HeaderValue::from_bytes(header.value) else { return };
        if head.append_header(name, value).is_err() {
            return;
        }
    }
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: None,
        max_connections_per_ip: None,
        max_url: 8 * 1024,
        max_headers: 100,
        max_header_bytes: 64 * 1024,
    };
    if head_limits::check(&head, &limits).is_some() || path::check(head.uri.path()).is_err() {
        return;
    }
    let rewrite = forward::Rewrite { client_ip: None, tls: false, strip: &[], add: &[] };
    let Ok(wire) = forward::upstream_request(&head, b"{}", &rewrite) else { return };
    // What the app receives parses as one whole request, followed by exactly its body.
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut upstream = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = upstream.parse(&wire) else {
        panic!("the app would get a request it cannot parse: {:?}", String::from_utf8_lossy(&wire));
    };
    assert_eq!(&wire[len..], b"{}");
    let named = |n: &str| upstream.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(n)).count();
    assert_eq!(named("content-length"), 1);
    for name in ["transfer-encoding", "connection", "te", "upgrade", "expect"] {
        assert_eq!(named(name), 0, "{name} forwarded");
    }
    assert!(upstream.headers.iter().all(|h| !h.name.to_ascii_lowercase().starts_with("hookgate-")));
    let path = upstream.path.unwrap_or_default();
    assert_eq!(path.split('?').next(), Some(head.uri.path()), "routing and forwarding disagree");
});
