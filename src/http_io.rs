//! HTTP helpers the services share: reading a whole request body within limits, one
//! request-and-answer exchange on a client session, and reading its answer's body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::HttpPeer;

use crate::error_response::ErrorResponse;

/// Where a request body comes from: Pingora's session (the admin port, the outbound
/// listener, the injector) or the inbound path's client ([`crate::inbound::client`]).
pub trait BodySource {
    /// The body's length, when the head declares it.
    fn declared_length(&self) -> Option<u64>;
    /// The client waits for `100 Continue` before it sends the body.
    fn expects_continue(&self) -> bool;
    /// Sends `100 Continue`; an error when the client went away.
    fn send_continue(&mut self) -> impl std::future::Future<Output = Result<(), ()>> + Send;
    /// The next piece of the body as it arrives, `None` at its end, or why it cannot be read.
    fn next_body_piece(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Bytes>, String>> + Send;
}

impl BodySource for ServerSession {
    fn declared_length(&self) -> Option<u64> {
        self.get_header("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }

    fn expects_continue(&self) -> bool {
        self.get_header("expect")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    }

    async fn send_continue(&mut self) -> Result<(), ()> {
        self.write_continue_response().await.map_err(|_| ())
    }

    async fn next_body_piece(&mut self) -> Result<Option<Bytes>, String> {
        self.read_request_body()
            .await
            .map_err(|e| e.etype().as_str().to_string())
    }
}

/// Reads the request body up to `limit` bytes within `timeout`.
///
/// A declared `Content-Length` over the limit is refused before reading anything, and
/// `Expect: 100-continue` is answered only once the request is acceptable: Pingora never
/// sends `100 Continue` by itself, and a client would otherwise stall for a second. A body
/// that arrives in one piece is returned as it is, without a copy.
pub async fn read_body(
    source: &mut impl BodySource,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, ErrorResponse> {
    let declared = source.declared_length();
    if declared.is_some_and(|len| len > limit) {
        return Err(body_too_large(limit));
    }
    if source.expects_continue() && source.send_continue().await.is_err() {
        return Err(ErrorResponse::new(
            400,
            "bad_request",
            "the client went away",
        ));
    }
    let read = async {
        let mut next = async || {
            source.next_body_piece().await.map_err(|why| {
                ErrorResponse::new(
                    400,
                    "bad_request_body",
                    format!("could not read the request body: {why}"),
                )
            })
        };
        let Some(first) = next().await? else {
            return Ok(Bytes::new());
        };
        let Some(second) = next().await? else {
            return if first.len() as u64 > limit {
                Err(body_too_large(limit))
            } else {
                Ok(first)
            };
        };
        let capacity = declared.unwrap_or(0).min(limit) as usize;
        let mut body = BytesMut::with_capacity(capacity.max(first.len() + second.len()));
        body.extend_from_slice(&first);
        body.extend_from_slice(&second);
        while let Some(piece) = next().await? {
            if (body.len() + piece.len()) as u64 > limit {
                return Err(body_too_large(limit));
            }
            body.extend_from_slice(&piece);
        }
        if body.len() as u64 > limit {
            return Err(body_too_large(limit));
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err(body_timeout(timeout)))
}

/// The answer to a body over `limit` bytes.
pub fn body_too_large(limit: u64) -> ErrorResponse {
    ErrorResponse::new(
        413,
        "body_too_large",
        format!("request body is larger than this route's limit of {limit} bytes"),
    )
}

/// The answer to a body that did not arrive whole within `timeout`.
pub fn body_timeout(timeout: Duration) -> ErrorResponse {
    ErrorResponse::new(
        408,
        "body_timeout",
        format!(
            "the request body did not arrive within {}s",
            timeout.as_secs_f64()
        ),
    )
}

/// Sends a request with its whole body and reads the answer's header.
pub async fn exchange(
    http: &mut HttpSession,
    request: RequestHeader,
    body: Bytes,
) -> Result<(), String> {
    http.write_request_header(Box::new(request))
        .await
        .map_err(|e| e.to_string())?;
    http.write_request_body(body, true)
        .await
        .map_err(|e| e.to_string())?;
    http.finish_request_body()
        .await
        .map_err(|e| e.to_string())?;
    http.read_response_header().await.map_err(|e| e.to_string())
}

/// Reads the answer's body, up to `limit` bytes. A connection whose answer was read to its
/// end goes back to `connector`'s pool for `peer`; one cut short is dropped.
pub async fn read_answer(
    connector: &Connector,
    mut http: HttpSession,
    peer: &HttpPeer,
    limit: usize,
) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut complete = false;
    while answer.len() < limit {
        match http.read_response_body().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            Ok(None) => {
                complete = true;
                break;
            }
            Err(_) => break,
        }
    }
    if complete {
        connector
            .release_http_session(http, peer, Some(Duration::from_secs(30)))
            .await;
    }
    answer
}
