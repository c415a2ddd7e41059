#![no_main]
// A request head as it arrives: parsed and checked by hookgate's own HTTP/1 (framing and
// smuggling checks), then through the checks before routing (path, limits) and the builder
// of the request the app receives. Any panic is a bug; and what the app receives is framed
// by one Content-Length, with no hop-by-hop header and no hookgate header the client sent.
use hookgate::config::ConnectionLimits;
use hookgate::inbound::http1::request;
use hookgate::inbound::{forward, head_limits, path};
use std::time::Duration;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: None,
        max_connections_per_ip: None,
        max_url: 8 * 1024,
        max_headers: 100,
        max_header_bytes: 64 * 1024,
    };
    let Ok(Some((parsed, _))) = request::parse_complete(data, &limits) else { return };
    let head = parsed.header;
    if head_limits::check(&head, &limits).is_some() || path::check(head.uri.path()).is_err() {
        return;
    }
    let rewrite = forward::Rewrite {
        forwarded_for: Some("192.0.2.1"),
        tls: false,
        strip: &[],
        add: &[],
        traceparent: None,
    };
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
