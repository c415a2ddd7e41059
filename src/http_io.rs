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

/// Reads the request body up to `limit` bytes within `timeout`.
///
/// A declared `Content-Length` over the limit is refused before reading anything, and
/// `Expect: 100-continue` is answered only once the request is acceptable: Pingora never
/// sends `100 Continue` by itself, and a client would otherwise stall for a second.
pub async fn read_body(
    session: &mut ServerSession,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, ErrorResponse> {
    let too_large = || body_too_large(limit);
    let declared = session
        .get_header("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let expects_continue = session
        .get_header("expect")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.write_continue_response().await.map_err(|e| {
            ErrorResponse::new(
                400,
                "bad_request",
                format!("client went away: {}", e.etype().as_str()),
            )
        })?;
    }
    let capacity = declared.unwrap_or(0).min(limit) as usize;
    let read = async {
        let mut body = BytesMut::with_capacity(capacity);
        while let Some(chunk) = session.read_request_body().await.map_err(|e| {
            ErrorResponse::new(
                400,
                "bad_request_body",
                format!("could not read the request body: {}", e.etype().as_str()),
            )
        })? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
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
