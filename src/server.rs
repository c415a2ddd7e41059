//! Assembles the Pingora server from a [`Config`]: one service per listener.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::{AdminApp, Readiness};
use crate::config::Config;
use crate::inbound::connection::InboundService;
use crate::inbound::InboundApp;
use crate::outbound::deliver::Endpoint;
use crate::outbound::worker::{DeliveryWorker, Dynamic, WorkerService};
use crate::outbound::OutboundApp;
use crate::store::{self, Queue};

/// Buffers of one client connection on the inbound port. Pingora's default read buffer is
/// 64 KiB, allocated for the connection's whole life and filled by any large body; webhook
/// heads and bodies are a few KiB, and a flood of connections multiplies it.
const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(16 * 1024),
    write: None,
};

/// Builds the server with every configured service, ready to run.
pub fn build(config: &Config) -> Result<Server, String> {
    let store = store::open(&config.store)?;
    let mut listeners: Vec<(&'static str, SocketAddr)> = vec![("admin", config.admin.listen)];
    if let Some(inbound) = &config.inbound {
        listeners.push(("inbound", inbound.listen));
    }
    if let Some(outbound) = &config.outbound {
        listeners.push(("outbound", outbound.listen));
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
            InboundService::new(InboundApp::new(inbound.clone(), &store)?),
        );
        match &inbound.tls {
            None => service.add_listener(
                ListenerConfig::tcp(inbound.listen.to_string()).l4_buffer(CLIENT_BUFFERS),
            ),
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

    let mut deliveries: Option<Arc<dyn Queue>> = None;
    let endpoint_names: Vec<String> = config
        .outbound
        .iter()
        .flat_map(|o| o.endpoints.iter().map(|e| e.name.clone()))
        .collect();
    if let Some(outbound) = &config.outbound {
        let queue = store.queue()?;
        let time_scale = retry_time_scale()?;
        let endpoints = outbound
            .endpoints
            .iter()
            .map(|e| {
                Endpoint::new(e.clone(), time_scale)
                    .map(Arc::new)
                    .map_err(|err| format!("outbound endpoint {}: {err}", e.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let named_secrets: std::collections::HashMap<String, String> = outbound
            .secrets
            .iter()
            .map(|(n, s)| (n.clone(), s.expose().to_string()))
            .collect();
        let app = OutboundApp {
            queue: queue.clone(),
            endpoints: endpoints.clone(),
            max_body: outbound.max_body,
            secrets: named_secrets.clone(),
            allow: outbound.allow_private_destinations.clone(),
            connector: pingora::connectors::http::Connector::new(None),
            time_scale,
        };
        let mut service = Service::new("outbound".to_string(), HttpServer::new_app(app));
        service.add_tcp(&outbound.listen.to_string());
        server.add_service(service);
        let dynamic = Dynamic {
            secrets: named_secrets,
            allow: outbound.allow_private_destinations.clone(),
        };
        let worker = DeliveryWorker::new(queue.clone(), endpoints, dynamic, time_scale);
        server.add_service(background_service(
            "delivery",
            WorkerService(Arc::new(worker)),
        ));
        deliveries = Some(queue);
    }

    let readiness = Readiness {
        listeners: listeners
            .into_iter()
            .filter(|(name, _)| *name != "admin")
            .collect(),
        store,
    };
    let admin_app = AdminApp {
        readiness,
        deliveries,
        token: config.admin.token.clone(),
        endpoints: endpoint_names,
    };
    let mut admin = Service::new("admin".to_string(), HttpServer::new_app(admin_app));
    admin.add_tcp(&config.admin.listen.to_string());
    admin.threads = Some(1);
    server.add_service(admin);
    Ok(server)
}

/// `HOOKGATE_RETRY_TIME_SCALE` multiplies every retry delay: tests and demos run hours-long
/// schedules in seconds with it (e.g. 0.001). Unset, it is 1.
fn retry_time_scale() -> Result<f64, String> {
    match std::env::var("HOOKGATE_RETRY_TIME_SCALE") {
        Err(_) => Ok(1.0),
        Ok(v) => match v.parse::<f64>() {
            Ok(scale) if scale > 0.0 && scale.is_finite() => Ok(scale),
            _ => Err(format!(
                "HOOKGATE_RETRY_TIME_SCALE must be a positive number, found {v:?}"
            )),
        },
    }
}

/// Runs until SIGTERM (graceful: listeners close, in-flight requests get the grace
/// period) or SIGINT (fast).
pub fn run(server: Server) {
    server.run(RunArgs::default());
}
