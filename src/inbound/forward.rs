//! Last stage of the inbound path: send the already-read request to the app and stream
//! its answer back to the client.
//!
//! hookgate makes the upstream call itself with Pingora's connector instead of Pingora's
//! proxy loop: the proxy can replay a body read ahead of time only up to 64 KiB (its retry
//! buffer), while webhooks must be verified whole before the app is contacted.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use tokio::time::Sleep;

use crate::config::InboundConfig;
use crate::error_response::ErrorResponse;
use crate::metrics::METRICS;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

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
    connector: Connector,
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
        peer.options.read_timeout = Some(config.upstream_timeout);
        peer.options.write_timeout = Some(config.upstream_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE);
        Ok(UpstreamClient {
            connector: Connector::new(None),
            peer,
            timeout: config.upstream_timeout,
        })
    }

    /// Sends `request` with `body` to the app and relays the answer to `session`. The whole
    /// exchange, the answer's body included, has `upstream_timeout`. An error means nothing
    /// was written to the client yet and the app gave no status.
    pub async fn forward(
        &self,
        session: &mut ServerSession,
        request: RequestHeader,
        body: Bytes,
        extra_response_headers: &[(&'static str, String)],
    ) -> Result<Forwarded, ErrorResponse> {
        // One timer for the whole exchange, raced against each step.
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut attempt = 0;
        let (mut upstream, response) = loop {
            let (mut upstream, reused) = self
                .connector
                .get_http_session(&self.peer)
                .await
                .map_err(|e| upstream_error(&e))?;
            let written = within(deadline.as_mut(), async {
                upstream
                    .write_request_header(Box::new(request.clone()))
                    .await?;
                if !body.is_empty() {
                    upstream.write_request_body(body.clone(), true).await?;
                }
                upstream.finish_request_body().await
            })
            .await;
            match written {
                Some(Ok(_)) => {}
                Some(Err(e)) if reused && attempt < STALE_CONNECTION_RETRIES => {
                    METRICS.upstream_resends.inc();
                    tracing::debug!(
                        error = e.etype().as_str(),
                        "pooled connection to the app was stale; sending again"
                    );
                    attempt += 1;
                    continue;
                }
                Some(Err(e)) => return Err(upstream_error(&e)),
                None => return Err(timeout_error(self.timeout)),
            }
            match within(deadline.as_mut(), upstream.read_response_header()).await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(upstream_error(&e)),
                None => return Err(timeout_error(self.timeout)),
            }
            let response = upstream.response_header().cloned().ok_or_else(|| {
                ErrorResponse::new(502, "upstream_error", "the app sent no response header")
            })?;
            break (upstream, response);
        };
        let status = response.status.as_u16();
        let incomplete = |answer| Ok(Forwarded::Incomplete { status, answer });

        // Read the start of the answer (usually all of it) before relaying anything.
        let mut start = BytesMut::new();
        let mut finished = false;
        while start.len() < ANSWER_BUFFER {
            match within(deadline.as_mut(), upstream.read_response_body()).await {
                Some(Ok(Some(chunk))) => start.extend_from_slice(&chunk),
                Some(Ok(None)) => {
                    finished = true;
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!(
                        status,
                        error = e.etype().as_str(),
                        "the app's answer broke off"
                    );
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

        let mut response = response;
        strip_hop_by_hop_response(&mut response);
        for (name, value) in extra_response_headers {
            let _ = response.insert_header(*name, value.as_str());
        }
        if session
            .write_response_header(Box::new(response))
            .await
            .is_err()
        {
            return Ok(Forwarded::Broken { status });
        }
        if !start.is_empty()
            && session
                .write_response_body(start.freeze(), false)
                .await
                .is_err()
        {
            return Ok(Forwarded::Broken { status });
        }
        while !finished {
            match within(deadline.as_mut(), upstream.read_response_body()).await {
                Some(Ok(Some(chunk))) => {
                    if session.write_response_body(chunk, false).await.is_err() {
                        return Ok(Forwarded::Broken { status });
                    }
                }
                Some(Ok(None)) => finished = true,
                Some(Err(e)) => {
                    tracing::warn!(
                        status,
                        error = e.etype().as_str(),
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
        if session.finish_body().await.is_err() {
            return Ok(Forwarded::Broken { status });
        }
        self.connector
            .release_http_session(upstream, &self.peer, Some(POOL_IDLE))
            .await;
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

/// Builds the request the app receives: the client's request with hop-by-hop headers
/// removed, framed by `Content-Length`, as HTTP/1.1 with a path-only target.
pub fn upstream_request(
    client: &RequestHeader,
    body_len: usize,
    client_ip: Option<std::net::IpAddr>,
    tls: bool,
) -> pingora::Result<RequestHeader> {
    let path = client
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut request = RequestHeader::build(
        client.method.clone(),
        path.as_bytes(),
        Some(client.headers.len() + 4),
    )?;
    let named_by_connection: Vec<String> = client
        .headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in client.headers.iter() {
        let name_str = name.as_str();
        if HOP_BY_HOP.contains(&name_str)
            || name_str == "content-length"
            || named_by_connection.iter().any(|n| n == name_str)
            // hookgate's own headers are only ever set by hookgate, never passed on from a client
            || name_str.starts_with("hookgate-")
        {
            continue;
        }
        request.append_header(name.clone(), value.clone())?;
    }
    if request.headers.get("host").is_none() {
        if let Some(authority) = client.uri.authority() {
            request.insert_header("Host", authority.as_str())?;
        }
    }
    let has_body = body_len > 0
        || client.headers.contains_key("content-length")
        || client.headers.contains_key("transfer-encoding");
    if has_body {
        request.insert_header("Content-Length", body_len.to_string())?;
    }
    if let Some(ip) = client_ip {
        let forwarded_for = match client
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(earlier) => format!("{earlier}, {ip}"),
            None => ip.to_string(),
        };
        request.insert_header("X-Forwarded-For", forwarded_for)?;
    }
    if tls {
        // hookgate terminated TLS itself: no client-supplied value can be right.
        request.insert_header("X-Forwarded-Proto", "https")?;
    } else if !client.headers.contains_key("x-forwarded-proto") {
        request.insert_header("X-Forwarded-Proto", "http")?;
    }
    Ok(request)
}

fn strip_hop_by_hop_response(response: &mut ResponseHeader) {
    // Transfer-Encoding stays: Pingora frames the client-side body from it.
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        response.remove_header(name);
    }
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
        let ip = "10.1.2.3".parse().ok();
        let req = upstream_request(&client, 5, ip, false).unwrap();
        let header = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(req.uri.to_string(), "/hooks/a?x=1");
        assert_eq!(header("content-length").as_deref(), Some("5"));
        assert_eq!(
            header("x-forwarded-for").as_deref(),
            Some("203.0.113.9, 10.1.2.3")
        );
        assert_eq!(header("x-signature").as_deref(), Some("abc"));
        assert_eq!(header("host").as_deref(), Some("example.com"));
        for gone in [
            "connection",
            "x-private",
            "transfer-encoding",
            "expect",
            "hookgate-verified",
        ] {
            assert_eq!(header(gone), None, "{gone} should be removed");
        }
    }

    #[test]
    fn get_without_body_gets_no_content_length() {
        let client = RequestHeader::build("GET", b"/", None).unwrap();
        let req = upstream_request(&client, 0, None, true).unwrap();
        assert_eq!(req.headers.get("x-forwarded-proto").unwrap(), "https");
        assert!(req.headers.get("content-length").is_none());
    }
}
