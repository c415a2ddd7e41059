//! Assembles the Pingora server from a [`Config`]: one service per listener.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;

use crate::admin::{AdminApp, Readiness};
use crate::config::{Config, StoreConfig};
use crate::inbound::InboundApp;
use crate::store::{DedupeStore, EmbeddedDedupe};

/// Builds the server with every configured service, ready to run.
pub fn build(config: &Config) -> Result<Server, String> {
    let (store_dir, dedupe): (_, Arc<dyn DedupeStore>) = match &config.store {
        StoreConfig::Embedded { path, max_ids } => {
            std::fs::create_dir_all(path)
                .map_err(|e| format!("store.path: cannot create {}: {e}", path.display()))?;
            let dedupe = EmbeddedDedupe::open(path, *max_ids).map_err(|e| format!("store: {e}"))?;
            (Some(path.clone()), Arc::new(dedupe))
        }
        StoreConfig::Redis { .. } => {
            return Err(
                "store.kind: redis is not available in this version yet; use embedded".into(),
            )
        }
    };
    let mut listeners: Vec<(&'static str, SocketAddr)> = vec![("admin", config.admin.listen)];
    if let Some(inbound) = &config.inbound {
        listeners.push(("inbound", inbound.listen));
    }
    // Pingora retries a busy port for 30 s and then kills only that service, silently:
    // find out now and refuse to start instead.
    for (name, addr) in &listeners {
        TcpListener::bind(addr)
            .map_err(|e| format!("{name}.listen: cannot listen on {addr}: {e}"))?;
    }

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(
            config.server.shutdown_timeout.as_secs_f64().ceil() as u64,
        ),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    if let Some(inbound) = &config.inbound {
        let mut service = Service::new(
            "inbound".to_string(),
            InboundApp::new(inbound.clone(), dedupe.clone())?,
        );
        match &inbound.tls {
            None => service.add_tcp(&inbound.listen.to_string()),
            Some(tls) => {
                let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
                let mut settings = TlsSettings::intermediate(&path(&tls.cert), &path(&tls.key))
                    .map_err(|e| format!("inbound.tls: {e}"))?;
                settings.enable_h2();
                service.add_tls_with_settings(&inbound.listen.to_string(), None, settings);
            }
        }
        server.add_service(service);
    }

    let readiness = Readiness {
        listeners: listeners
            .into_iter()
            .filter(|(name, _)| *name != "admin")
            .collect(),
        store_dir,
    };
    let mut admin = Service::new(
        "admin".to_string(),
        HttpServer::new_app(AdminApp { readiness }),
    );
    admin.add_tcp(&config.admin.listen.to_string());
    admin.threads = Some(1);
    server.add_service(admin);
    Ok(server)
}

/// Runs until SIGTERM (graceful: listeners close, in-flight requests get the grace
/// period) or SIGINT (fast).
pub fn run(server: Server) {
    server.run(RunArgs::default());
}
