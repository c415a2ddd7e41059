//! The outbound side: an app posts plain JSON to `http://<outbound.listen>/<endpoint>`;
//! hookgate stores it durably, answers `202 {"delivery_id": ...}`, then signs and
//! delivers it with retries ([`worker`]), keeping dead letters for replay.

pub mod deliver;
pub mod queue;
pub mod retry;
pub mod worker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::error_response::ErrorResponse;
use crate::inbound::body::read_body;
use crate::schemes::unix_now;
use queue::{Queue, Record, State};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh delivery id in the Standard Webhooks style.
pub fn new_delivery_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source is available");
    format!("msg_{}", const_hex::encode(bytes))
}

/// The listener the app posts to.
pub struct OutboundApp {
    pub queue: Arc<dyn Queue>,
    pub endpoints: HashSet<String>,
    pub max_body: u64,
}

fn json_response(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(&body).expect("JSON values always serialize");
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len())
        .body(body)
        .expect("static response parts are valid")
}

fn error(answer: ErrorResponse) -> Response<Vec<u8>> {
    json_response(
        answer.status,
        json!({ "error": answer.code, "message": answer.message }),
    )
}

impl OutboundApp {
    async fn accept(&self, session: &mut ServerSession) -> Result<String, ErrorResponse> {
        let header = session.req_header();
        if header.method != http::Method::POST {
            return Err(ErrorResponse::new(
                405,
                "method_not_allowed",
                "post the message body to /<endpoint>",
            ));
        }
        let endpoint = header.uri.path().trim_start_matches('/').to_string();
        if !self.endpoints.contains(&endpoint) {
            return Err(ErrorResponse::new(
                404,
                "endpoint_not_found",
                format!("no endpoint is named {endpoint:?}"),
            ));
        }
        let content_type = header
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_body(session, self.max_body, Duration::from_secs(30)).await?;
        let id = new_delivery_id();
        let record = Record {
            id: id.clone(),
            endpoint,
            timestamp: unix_now(),
            content_type,
            created_ms: now_ms(),
            state: State::Pending,
            due_ms: now_ms(),
            round_attempts: 0,
            attempts: Vec::new(),
        };
        let queue = self.queue.clone();
        // Durable before the 202: the commit fsyncs.
        tokio::task::spawn_blocking(move || queue.enqueue(record, &body))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| {
                ErrorResponse::new(
                    503,
                    "queue_unavailable",
                    format!("the message was not stored: {e}"),
                )
            })?;
        Ok(id)
    }
}

#[async_trait]
impl ServeHttp for OutboundApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match self.accept(session).await {
            Ok(id) => json_response(202, json!({ "delivery_id": id })),
            Err(answer) => {
                session.set_keepalive(None);
                error(answer)
            }
        }
    }
}
