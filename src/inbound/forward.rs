//! Last stage of the inbound path: send the already-read request to the app and stream
//! its answer back to the client.
//!
//! hookgate makes the upstream call itself, in its own HTTP/1.1 ([`super::http1`]), instead
//! of Pingora's proxy loop: the proxy can replay a body read ahead of time only up to 64 KiB
//! (its retry buffer), while webhooks must be verified whole before the app is contacted.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Method;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use tokio::time::Sleep;

use super::app_connections::AppConnections;
use super::client::Client;
use super::http1::answer;
use super::http1::body::Body;
use super::http1::Connection;
use crate::config::InboundConfig;
use crate::error_response::ErrorResponse;
use crate::metrics::METRICS;

/// At most this many idle connections to the app are kept.
const POOL_SIZE: usize = 128;

/// How long an idle pooled connection to the app is kept. Short, because apps close idle
/// connections after a few seconds (Node 5 s, gunicorn 2 s) and a POST on a connection the
/// app just closed has to be sent again.
const POOL_IDLE: Duration = Duration::from_secs(2);

/// A request whose write to a pooled connection failed, so the app cannot have read it
/// whole, is sent again on another connection, at most this many times. A request written
/// whole is never sent again: the app may have acted on it before closing.
const STALE_CONNECTION_RETRIES: usize = 3;

/// The app's answer is read up to this much before hookgate relays any of it, so that an
/// app that stalls or breaks off mid-answer still leaves hookgate free to answer the
/// provider cleanly. Webhook answers are small; longer ones are streamed.
const ANSWER_BUFFER: usize = 64 * 1024;

pub struct UpstreamClient {
    connections: AppConnections,
    peer: HttpPeer,
    timeout: Duration,
}

/// How forwarding ended, for the caller's metrics, dedupe and connection handling.
pub enum Forwarded {
    /// The app's answer was relayed completely.
    Complete { status: u16 },
    /// The app's answer was being relayed and broke off; the client connection must be dropped.
    Broken { status: u16 },
    /// The app sent its status line and then stalled or broke off before the end of its
    /// answer, and nothing was relayed yet: the client gets `answer` instead.
    Incomplete { status: u16, answer: ErrorResponse },
}

impl UpstreamClient {
    /// The app's address on a trace span (OpenTelemetry's `server.*` attributes).
    pub fn describe(&self, span: &mut crate::telemetry::Span) {
        if let Some(addr) = self.peer._address.as_inet() {
            span.set("server.address", addr.ip().to_string());
            span.set("server.port", addr.port());
        }
    }

    /// Resolves the upstream address once, at start-up.
    pub fn new(config: &InboundConfig) -> Result<Self, String> {
        let upstream = &config.upstream;
        let addr: SocketAddr = (upstream.host.as_str(), upstream.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve upstream {upstream}: {e}"))?
            .next()
            .ok_or_else(|| format!("upstream {upstream} resolves to no address"))?;
        let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
        peer.options.connection_timeout = Some(config.connect_timeout);
        peer.options.total_connection_timeout = Some(config.connect_timeout);
        Ok(UpstreamClient {
            connections: AppConnections::new(POOL_SIZE, POOL_IDLE),
            peer,
            timeout: config.upstream_timeout,
        })
    }

    /// Sends `request` (head and body, from [`upstream_request`]) to the app and relays
    /// the answer to `client`. The whole exchange, the answer's body included, has
    /// `upstream_timeout`. An error means nothing was written to the client yet and the
    /// app gave no status.
    pub async fn forward(
        &self,
        client: &mut Client<'_>,
        request: Bytes,
        extra_response_headers: &[(&'static str, String)],
    ) -> Result<Forwarded, ErrorResponse> {
        // One timer for the whole exchange, raced against each step.
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        // The answer to a HEAD request has no body, whatever its Content-Length says.
        let head = client.req_header().method == Method::HEAD;
        let mut attempt = 0;
        let (mut app, answer) = loop {
            let (stream, reused) = self
                .connections
                .get(&self.peer)
                .await
                .map_err(|e| upstream_error(&e))?;
            let mut app = Connection::new(stream);
            match within(deadline.as_mut(), app.write(&request)).await {
                Some(Ok(())) => {}
                Some(Err(e)) if reused && attempt < STALE_CONNECTION_RETRIES => {
                    METRICS.upstream_resends.inc();
                    tracing::debug!(
                        error = %e.kind(),
                        "pooled connection to the app was stale; sending again"
                    );
                    attempt += 1;
                    continue;
                }
                Some(Err(e)) => {
                    return Err(ErrorResponse::new(
                        502,
                        "upstream_error",
                        format!("writing the request to the app failed: {}", e.kind()),
                    ))
                }
                None => return Err(timeout_error(self.timeout)),
            }
            match within(deadline.as_mut(), answer::read(&mut app, head)).await {
                Some(Ok(answer)) => break (app, answer),
                Some(Err(e)) => {
                    return Err(ErrorResponse::new(502, "upstream_error", e.describe()))
                }
                None => return Err(timeout_error(self.timeout)),
            }
        };
        let status = answer.status;
        let incomplete = |answer| Ok(Forwarded::Incomplete { status, answer });

        // Read the start of the answer (usually all of it) before relaying anything.
        let mut body = Body::new(answer.framing);
        let mut start = Bytes::new();
        let mut more = BytesMut::new();
        let mut finished = false;
        while !finished && start.len() + more.len() < ANSWER_BUFFER {
            match within(deadline.as_mut(), body.next(&mut app)).await {
                // The usual case: the whole body in one piece, kept without a copy.
                Some(Ok(Some(piece))) if start.is_empty() => start = piece,
                Some(Ok(Some(piece))) => more.extend_from_slice(&piece),
                Some(Ok(None)) => finished = true,
                Some(Err(e)) => {
                    tracing::warn!(status, error = e.describe(), "the app's answer broke off");
                    return incomplete(ErrorResponse::new(
                        502,
                        "upstream_incomplete",
                        "the app's answer broke off before its end",
                    ));
                }
                None => {
                    tracing::warn!(status, "the app's answer stalled before its end");
                    return incomplete(timeout_error(self.timeout));
                }
            }
        }
        if !more.is_empty() {
            let mut joined = BytesMut::with_capacity(start.len() + more.len());
            joined.extend_from_slice(&start);
            joined.extend_from_slice(&more);
            start = joined.freeze();
        }

        if client
            .relay_head(&answer, extra_response_headers, start, finished)
            .await
            .is_err()
        {
            return Ok(Forwarded::Broken { status });
        }
        while !finished {
            match within(deadline.as_mut(), body.next(&mut app)).await {
                Some(Ok(Some(piece))) => {
                    if client.relay_body(piece).await.is_err() {
                        return Ok(Forwarded::Broken { status });
                    }
                }
                Some(Ok(None)) => finished = true,
                Some(Err(e)) => {
                    tracing::warn!(
                        status,
                        error = e.describe(),
                        "the app's answer broke off while relayed"
                    );
                    return Ok(Forwarded::Broken { status });
                }
                None => {
                    tracing::warn!(status, "the app's answer stalled while relayed");
                    return Ok(Forwarded::Broken { status });
                }
            }
        }
        if client.relay_end().await.is_err() {
            return Ok(Forwarded::Broken { status });
        }
        if answer.reusable {
            // Bytes after the answer's end are not the app's to send: the connection goes.
            if let Some(stream) = app.into_idle_stream() {
                self.connections.put(stream);
            }
        }
        Ok(Forwarded::Complete { status })
    }
}

/// `step`'s output, or `None` once `deadline` has passed.
async fn within<T>(deadline: Pin<&mut Sleep>, step: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        output = step => Some(output),
        () = deadline => None,
    }
}

/// What hookgate adds to or removes from a request on its way to the app.
pub struct Rewrite<'a> {
    /// The client's address, appended to `X-Forwarded-For`.
    pub forwarded_for: Option<&'a str>,
    /// hookgate terminated TLS.
    pub tls: bool,
    /// Headers the app must not see (a verified signature, unless kept).
    pub strip: &'a [&'a str],
    /// hookgate's own headers.
    pub add: &'a [(&'a str, &'a str)],
    /// hookgate's span, as the app's parent: replaces the client's `traceparent`.
    pub traceparent: Option<&'a str>,
    /// Pass on header names with `_` (`allow_underscore_headers`); by default they are
    /// dropped, as nginx does.
    pub allow_underscores: bool,
}

/// Whether a header name, in lowercase with `_` read as `-`, is one hookgate writes or
/// frames the request with. CGI-style servers (WSGI, PHP, Rack) map `_` and `-` to the
/// same variable, so a client's `Hookgate_Verified` would reach such an app as hookgate's
/// own `Hookgate-Verified`: a name like that is never passed on.
fn reserved(normalised: &str, rewrite: &Rewrite) -> bool {
    normalised.starts_with("hookgate-")
        || normalised.starts_with("x-forwarded-")
        || matches!(
            normalised,
            "forwarded"
                | "traceparent"
                | "tracestate"
                | "host"
                | "content-length"
                | "content-type"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "upgrade"
                | "expect"
        )
        || rewrite
            .strip
            .iter()
            .any(|s| s.eq_ignore_ascii_case(normalised))
}

/// Builds the request the app receives, as the bytes to write: the client's request with
/// hop-by-hop headers removed, framed by `Content-Length`, as HTTP/1.1 with a path-only
/// target, then the body. Written directly rather than through a `RequestHeader`, whose
/// header map cost a tenth of the request path. Fails on a value that cannot be sent.
pub fn upstream_request(
    client: &RequestHeader,
    body: &[u8],
    rewrite: &Rewrite,
) -> Result<Bytes, &'static str> {
    let path = client.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut wire = BytesMut::with_capacity(1024 + body.len());
    for part in [client.method.as_str(), " ", path, " HTTP/1.1\r\n"] {
        wire.extend_from_slice(part.as_bytes());
    }
    let mut header = |name: &str, value: &[u8]| {
        for part in [name.as_bytes(), b": ", value, b"\r\n"] {
            wire.extend_from_slice(part);
        }
    };
    // Fields the client's `Connection` names are hop-by-hop too (RFC 9110 §7.6.1).
    let named_by_connection: Vec<&str> = client
        .headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|option| {
            !option.eq_ignore_ascii_case("close") && !option.eq_ignore_ascii_case("keep-alive")
        })
        .collect();
    let (mut host, mut framed, mut forwarded_proto) = (false, false, false);
    let mut forwarded_for = Vec::new();
    for (name, value) in client.headers.iter() {
        let name = name.as_str();
        if name.as_bytes().contains(&b'_')
            && (!rewrite.allow_underscores || reserved(&name.replace('_', "-"), rewrite))
        {
            continue;
        }
        // Hop-by-hop fields describe one connection, not the message (RFC 9110 §7.6.1).
        match name {
            "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "upgrade"
            | "expect" => continue,
            "content-length" | "transfer-encoding" => {
                framed = true;
                continue;
            }
            "host" => host = true,
            "x-forwarded-for" if rewrite.forwarded_for.is_some() => {
                forwarded_for.extend(value.to_str().ok());
                continue;
            }
            "x-forwarded-proto" if rewrite.tls => continue,
            "x-forwarded-proto" => forwarded_proto = true,
            "traceparent" if rewrite.traceparent.is_some() => continue,
            // hookgate's own headers are only ever set by hookgate, never passed on from a client
            _ if name.starts_with("hookgate-") => continue,
            _ => {}
        }
        if named_by_connection
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
            || rewrite.strip.iter().any(|s| s.eq_ignore_ascii_case(name))
        {
            continue;
        }
        header(name, value.as_bytes());
    }
    if !host {
        if let Some(authority) = client.uri.authority() {
            header("host", authority.as_str().as_bytes());
        }
    }
    if framed || !body.is_empty() {
        header("content-length", body.len().to_string().as_bytes());
    }
    if let Some(ip) = rewrite.forwarded_for {
        if forwarded_for.is_empty() {
            header("x-forwarded-for", ip.as_bytes());
        } else {
            let chain = format!("{}, {ip}", forwarded_for.join(", "));
            header("x-forwarded-for", chain.as_bytes());
        }
    }
    if rewrite.tls {
        // hookgate terminated TLS itself: no client-supplied value can be right.
        header("x-forwarded-proto", b"https");
    } else if !forwarded_proto {
        header("x-forwarded-proto", b"http");
    }
    for (name, value) in rewrite.add {
        // A delivery id may come from the body: it must not end the header line.
        if http::HeaderValue::from_str(value).is_err() {
            return Err("a header value hookgate adds is not valid in HTTP");
        }
        header(name, value.as_bytes());
    }
    if let Some(traceparent) = rewrite.traceparent {
        header("traceparent", traceparent.as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(body);
    Ok(wire.freeze())
}

fn timeout_error(timeout: Duration) -> ErrorResponse {
    ErrorResponse::new(
        504,
        "upstream_timeout",
        format!("the app did not answer within {}s", timeout.as_secs_f64()),
    )
}

fn upstream_error(e: &Error) -> ErrorResponse {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ErrorResponse::new(504, "upstream_timeout", "the app did not answer in time")
        }
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            ErrorResponse::new(
                502,
                "upstream_unavailable",
                "the app refused the connection",
            )
        }
        _ => ErrorResponse::new(
            502,
            "upstream_error",
            format!("forwarding to the app failed: {}", e.etype().as_str()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request line and the headers (lowercase names) of `wire`, and its body.
    fn parse(wire: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
        let text = String::from_utf8(wire.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap().to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        (line, headers, body.as_bytes().to_vec())
    }

    const PLAIN: Rewrite = Rewrite {
        forwarded_for: None,
        tls: false,
        strip: &[],
        add: &[],
        traceparent: None,
        allow_underscores: false,
    };

    #[test]
    fn underscore_names_never_pass_as_hookgates_own() {
        let mut client = RequestHeader::build("POST", b"/hooks/a", None).unwrap();
        for name in [
            "Hookgate_Verified",
            "hookgate_delivery-id",
            "X_Forwarded_For",
            "x-forwarded_proto",
            "Content_Length",
            "X_Custom",
            "X_Api_Key",
        ] {
            client.insert_header(name.to_string(), "forged").unwrap();
        }
        client.insert_header("X-Custom-Ok", "1").unwrap();
        let names = |rewrite: &Rewrite| -> Vec<String> {
            let (_, headers, _) = parse(&upstream_request(&client, b"", rewrite).unwrap());
            headers.into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(&PLAIN), ["x-custom-ok", "x-forwarded-proto"]);
        let allowed = Rewrite {
            allow_underscores: true,
            strip: &["X-Api-Key"],
            ..PLAIN
        };
        assert_eq!(
            names(&allowed),
            ["x_custom", "x-custom-ok", "x-forwarded-proto"]
        );
    }

    #[test]
    fn upstream_request_drops_hop_by_hop_and_hookgate_headers() {
        let mut client = RequestHeader::build("POST", b"/hooks/a?x=1", None).unwrap();
        client.insert_header("Host", "example.com").unwrap();
        client
            .insert_header("Connection", "keep-alive, X-Private")
            .unwrap();
        client.insert_header("X-Private", "1").unwrap();
        client
            .insert_header("Transfer-Encoding", "chunked")
            .unwrap();
        client.insert_header("Expect", "100-continue").unwrap();
        client.insert_header("Hookgate-Verified", "forged").unwrap();
        client
            .insert_header("X-Forwarded-For", "203.0.113.9")
            .unwrap();
        client.insert_header("X-Signature", "abc").unwrap();
        client.insert_header("X-Secret-Sig", "s").unwrap();
        let rewrite = Rewrite {
            forwarded_for: Some("10.1.2.3"),
            strip: &["X-Secret-Sig"],
            add: &[("Hookgate-Route", "a")],
            ..PLAIN
        };
        let (line, headers, body) = parse(&upstream_request(&client, b"hello", &rewrite).unwrap());
        let header = |n: &str| {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
                .collect();
            assert!(values.len() <= 1, "{n} sent twice: {values:?}");
            values.first().map(|v| v.to_string())
        };
        assert_eq!(line, "POST /hooks/a?x=1 HTTP/1.1");
        assert_eq!(body, b"hello");
        assert_eq!(header("content-length").as_deref(), Some("5"));
        assert_eq!(
            header("x-forwarded-for").as_deref(),
            Some("203.0.113.9, 10.1.2.3")
        );
        assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(header("x-signature").as_deref(), Some("abc"));
        assert_eq!(header("host").as_deref(), Some("example.com"));
        assert_eq!(header("hookgate-route").as_deref(), Some("a"));
        for gone in [
            "connection",
            "x-private",
            "transfer-encoding",
            "expect",
            "hookgate-verified",
            "x-secret-sig",
        ] {
            assert_eq!(header(gone), None, "{gone} should be removed");
        }
    }

    #[test]
    fn hookgate_span_replaces_the_clients_traceparent() {
        let mut client = RequestHeader::build("POST", b"/", None).unwrap();
        client
            .insert_header(
                "traceparent",
                "00-11111111111111111111111111111111-2222222222222222-01",
            )
            .unwrap();
        client.insert_header("tracestate", "vendor=1").unwrap();
        let ours = "00-11111111111111111111111111111111-3333333333333333-01";
        let rewrite = Rewrite {
            traceparent: Some(ours),
            ..PLAIN
        };
        let (_, headers, _) = parse(&upstream_request(&client, b"", &rewrite).unwrap());
        let values = |n: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(values("traceparent"), [ours]);
        assert_eq!(values("tracestate"), ["vendor=1"]);
        // Without tracing, the client's passes through untouched.
        let (_, headers, _) = parse(&upstream_request(&client, b"", &PLAIN).unwrap());
        assert!(headers
            .iter()
            .any(|(k, v)| k == "traceparent" && v.ends_with("2222222222222222-01")));
    }

    #[test]
    fn get_without_body_gets_no_content_length() {
        let mut client = RequestHeader::build("GET", b"/", None).unwrap();
        client.insert_header("X-Forwarded-Proto", "http").unwrap();
        let rewrite = Rewrite { tls: true, ..PLAIN };
        let (line, headers, _) = parse(&upstream_request(&client, b"", &rewrite).unwrap());
        assert_eq!(line, "GET / HTTP/1.1");
        assert_eq!(
            headers,
            [("x-forwarded-proto".to_string(), "https".to_string())]
        );
    }

    #[test]
    fn an_added_value_cannot_inject_a_header() {
        let client = RequestHeader::build("POST", b"/", None).unwrap();
        let rewrite = Rewrite {
            add: &[("Hookgate-Delivery-Id", "1\r\nX-Admin: yes")],
            ..PLAIN
        };
        assert!(upstream_request(&client, b"{}", &rewrite).is_err());
    }
}
