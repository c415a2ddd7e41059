//! Stage 2 of the inbound path: the whole raw body is read before anything else happens,
//! so it can be verified before the app sees a single byte of it. A refused request's
//! body is drained here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::client::Client;
use crate::error_response::ErrorResponse;
use crate::http_io::{body_timeout, body_too_large};

/// How long, and how much of, a refused request's body is still read after the answer:
/// closing at once would reset a client still sending, and it would never read the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// Reads the whole body, up to `limit` bytes within `timeout`. A declared length over the
/// limit is refused before anything is read, and `Expect: 100-continue` is answered only
/// once the request is acceptable (Pingora's h2 session never sends it by itself).
pub async fn read(
    client: &mut Client<'_>,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, ErrorResponse> {
    let declared = client.declared_length();
    if declared.is_some_and(|len| len > limit) {
        return Err(body_too_large(limit));
    }
    if client.expects_continue() && client.send_continue().await.is_err() {
        return Err(ErrorResponse::new(
            400,
            "bad_request",
            "the client went away",
        ));
    }
    let read = async {
        let mut next = async || {
            client.next_body_piece().await.map_err(|why| {
                ErrorResponse::new(
                    400,
                    "bad_request_body",
                    format!("could not read the request body: {why}"),
                )
            })
        };
        // The usual case: the body arrived whole, and is taken as it is.
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

/// Reads and drops what the client still sends of a refused request's body, for a bounded
/// time and size (nginx's lingering close), so it reads the answer before the connection
/// closes.
pub async fn linger(client: &mut Client<'_>) {
    let drain = async {
        let mut drained = 0;
        while let Ok(Some(piece)) = client.next_body_piece().await {
            drained += piece.len();
            if drained > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
