//! `POST /admin/store/rotate-key`: every value the store keeps sealed anew with the first
//! key of `store.encryption.keys`, in the background, and then the store's key check moved
//! to that key, so that the older ones can leave the list. `GET` shows the pass's progress
//! (or the last one's outcome). (Other methods were answered 405 before this.)

use std::sync::Arc;

use http::{Method, Response};
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::error_response::{json_response, ErrorResponse};
use crate::store::reseal::Resealer;

pub async fn rotate_key_api(
    resealer: &Arc<Resealer>,
    session: &mut ServerSession,
) -> Response<Vec<u8>> {
    let _ = session.drain_request_body().await;
    let method = session.req_header().method.clone();
    if method == Method::POST {
        return match resealer.rotate() {
            Ok(pass) => json_response(202, pass.view()),
            Err(e) => ErrorResponse::new(409, "store_not_encrypted", e.to_string()).to_response(),
        };
    }
    let pass = resealer.last();
    json_response(
        200,
        pass.map_or_else(|| json!({ "state": "idle" }), |pass| pass.view()),
    )
}
