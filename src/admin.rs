//! The admin port: `/healthz` (alive), `/readyz` (ready to take traffic), `/metrics`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::metrics::METRICS;

/// What `/readyz` checks.
pub struct Readiness {
    /// Listeners that must accept connections (inbound, outbound).
    pub listeners: Vec<(&'static str, SocketAddr)>,
    /// The embedded store's directory, which must exist and be writable.
    pub store_dir: Option<PathBuf>,
}

pub struct AdminApp {
    pub readiness: Readiness,
}

impl Readiness {
    async fn check(&self) -> Vec<(&'static str, Result<(), String>)> {
        let mut results = Vec::new();
        for (name, addr) in &self.listeners {
            results.push((*name, listener_accepts(*addr).await));
        }
        if let Some(dir) = &self.store_dir {
            results.push(("store", dir_writable(dir)));
        }
        results
    }
}

/// A bound listener accepts a TCP connection; this catches a listener Pingora failed to bind.
async fn listener_accepts(addr: SocketAddr) -> Result<(), String> {
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    match tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(target),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr} is not accepting connections: {e}")),
        Err(_) => Err(format!("{addr} did not accept a connection within 500ms")),
    }
}

fn dir_writable(dir: &PathBuf) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() && !m.permissions().readonly() => Ok(()),
        Ok(_) => Err(format!("{} is not a writable directory", dir.display())),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

fn json_response(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(&body).expect("JSON values always serialize");
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .body(body)
        .expect("static response parts are valid")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // Admin requests carry no body worth reading; drain so the connection can be reused.
        let _ = session.drain_request_body().await;
        match session.req_header().uri.path() {
            "/healthz" | "/livez" => json_response(200, json!({ "status": "ok" })),
            "/readyz" => {
                let results = self.readiness.check().await;
                let ready = results.iter().all(|(_, r)| r.is_ok());
                let checks: serde_json::Map<String, serde_json::Value> = results
                    .into_iter()
                    .map(|(name, r)| {
                        (
                            name.to_string(),
                            json!(r.err().unwrap_or_else(|| "ok".to_string())),
                        )
                    })
                    .collect();
                let status = if ready { "ready" } else { "not_ready" };
                json_response(
                    if ready { 200 } else { 503 },
                    json!({ "status": status, "checks": checks }),
                )
            }
            "/metrics" => {
                let body = METRICS.render().into_bytes();
                Response::builder()
                    .status(200)
                    .header(
                        "Content-Type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .header("Content-Length", body.len())
                    .body(body)
                    .expect("static response parts are valid")
            }
            path => json_response(
                404,
                json!({ "error": "not_found", "message": format!("{path} is not an admin endpoint (try /healthz, /readyz, /metrics)") }),
            ),
        }
    }
}
