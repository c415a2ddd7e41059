//! `hookgate inject`: a Kubernetes mutating admission webhook that adds the hookgate
//! sidecar to pods annotated `hookgate.io/inject: "true"` ([`patch`] says what is added,
//! [`review`] reads and answers the AdmissionReview). It serves HTTPS (rustls) on one port:
//! `POST` any path with a review, `GET /healthz` for probes.

pub mod patch;
pub mod review;

use std::path::Path;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::error_response::json_response;
use crate::http_io::read_body;
use patch::Sidecar;

/// The largest AdmissionReview read (a pod with huge inline env still fits).
const MAX_REVIEW: u64 = 4 * 1024 * 1024;

struct InjectorApp {
    sidecar: Sidecar,
}

#[async_trait]
impl ServeHttp for InjectorApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let header = session.req_header();
        if header.method == http::Method::GET {
            return json_response(200, serde_json::json!({ "status": "ok" }));
        }
        match read_body(session, MAX_REVIEW, std::time::Duration::from_secs(10)).await {
            Ok(body) => {
                let answer = review::answer(&body, &self.sidecar);
                if answer["response"]["allowed"] == false {
                    tracing::warn!(uid = %answer["response"]["uid"], reason = %answer["response"]["status"]["message"], "admission denied");
                }
                json_response(200, answer)
            }
            Err(answer) => answer.to_response(),
        }
    }
}

/// The injector's server: one TLS listener.
pub fn build(listen: &str, cert: &Path, key: &Path, sidecar: Sidecar) -> Result<Server, String> {
    std::net::TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let settings = TlsSettings::intermediate(&path(cert), &path(key))
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    let mut server = Server::new_with_opt_and_conf(
        None,
        ServerConf {
            threads: 1,
            // As for `run`: the grace period is spent before Pingora hears of a SIGTERM.
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(5),
            ..ServerConf::default()
        },
    );
    server.bootstrap();
    let mut service = Service::new(
        "injector".to_string(),
        HttpServer::new_app(InjectorApp { sidecar }),
    );
    service.add_tls_with_settings(listen, None, settings);
    server.add_service(service);
    Ok(server)
}
