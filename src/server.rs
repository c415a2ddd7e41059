//! Assembles the Pingora server from a [`Config`]: one service per listener.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

use crate::admin::overview::{Overview, Sampler};
use crate::admin::reload::ConfigReload;
use crate::admin::{self, AdminApp, Readiness};
use crate::config::Config;
use crate::recent::RecentRefusals;
use crate::reload::Reloader;
use crate::shutdown::{Signals, Stopped};
use crate::{inbound, outbound, store, telemetry};
use pingora::services::background::background_service;

/// Builds the server with every configured service, ready to run; with `path` (the file
/// `config` came from), a reload follows its changes and `SIGHUP`.
pub fn build(config: &Config, path: Option<&Path>) -> Result<Server, String> {
    let store = store::open(&config.store, config.store_encryption.as_ref())?;
    let mut listeners: Vec<(&'static str, SocketAddr)> = vec![("admin", config.admin.listen)];
    if let Some(inbound) = &config.inbound {
        listeners.push(("inbound", inbound.listen));
    }
    if let Some(listen) = config.outbound.as_ref().and_then(|o| o.listen) {
        listeners.push(("outbound", listen));
    }
    if let Some(listen) = config.admin.portal.as_ref().and_then(|p| p.listen) {
        listeners.push(("portal", listen));
    }
    // Pingora retries a busy port for 30 s and then kills only that service, silently:
    // find out now and refuse to start instead.
    for (name, addr) in &listeners {
        TcpListener::bind(addr)
            .map_err(|e| format!("{name}.listen: cannot listen on {addr}: {e}"))?;
    }

    let conf = ServerConf {
        threads: config.server.threads,
        work_stealing: false,
        // The grace period is spent draining before Pingora hears of the SIGTERM
        // (`shutdown.rs`), so that an idle process stops at once.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(
            config.server.shutdown_timeout.as_secs_f64().ceil() as u64,
        ),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    if let Some(exporter) = telemetry::install(&config.telemetry) {
        server.add_service(exporter);
    }

    let refusals = Arc::new(RecentRefusals::new(config.admin.recent_refusals));
    let overview = Arc::new(Overview::default());
    let (mut deliveries, mut subscriptions, mut outbound_reload) = (None, None, None);
    let mut jobs = None;
    let mut resealer = None;
    // The outbound queue and worker, which `deliver: queue` routes store into.
    let mut queued = None;
    if let Some(config) = &config.outbound {
        let services = outbound::service::services(config, &store)?;
        if let Some(listener) = services.listener {
            server.add_service(listener);
        }
        server.add_service(services.worker);
        server.add_service(services.operational);
        server.add_service(services.history_service);
        server.add_service(services.sealing);
        resealer = Some(services.resealer);
        queued = Some(inbound::QueueHandle::new(
            services.queue.clone(),
            services.wake.clone(),
        ));
        subscriptions = Some(Arc::new(admin::subscriptions::SubscriptionApi {
            subscriptions: services.subscriptions,
            queue: services.queue.clone(),
            connector: pingora::connectors::http::Connector::new(None),
            endpoints: outbound::facade::Endpoints::new(services.reload.live.clone()),
        }));
        jobs = Some(Arc::new(admin::jobs::Jobs::new(
            services.queue.clone(),
            services.history.clone(),
        )));
        deliveries = Some((services.queue, services.history));
        outbound_reload = Some(services.reload);
    }
    let mut inbound_app = None;
    if let Some(config) = &config.inbound {
        let (service, app) = inbound::service::service(config, &store, refusals.clone(), queued)?;
        server.add_service(service);
        inbound_app = Some(app);
    }
    // Without an outbound side the store keeps nothing sealed but its key check.
    let resealer = resealer.unwrap_or_else(|| {
        Arc::new(store::reseal::Resealer::new(
            store.clone(),
            None,
            None,
            None,
        ))
    });
    let readiness = Readiness {
        listeners: listeners
            .into_iter()
            .filter(|(name, _)| *name != "admin")
            .collect(),
        store,
    };
    let endpoints = outbound_reload
        .as_ref()
        .map(|r| outbound::facade::Endpoints::new(r.live.clone()));
    let mut reload: Option<Arc<dyn ConfigReload>> = None;
    if let Some(path) = path {
        let reloader = Reloader::service(path.to_path_buf(), config, inbound_app, outbound_reload);
        reload = Some(reloader.task());
        server.add_service(reloader);
    }
    // The tenants' portal, on the admin port and on a listener of its own if configured.
    let portal = match (&config.admin.portal, &subscriptions, &deliveries, &jobs) {
        (Some(settings), Some(api), Some((_, history)), Some(jobs)) => {
            let portal = Arc::new(admin::portal::Portal::new(
                settings,
                config.admin.listen,
                Arc::clone(api),
                (Arc::clone(history), Arc::clone(jobs)),
            ));
            if let Some(listen) = settings.listen {
                server.add_service(admin::portal::service(listen, portal.clone()));
            }
            Some(portal)
        }
        _ => None,
    };
    let app = AdminApp {
        readiness,
        deliveries,
        jobs,
        resealer,
        token: config.admin.token.clone(),
        endpoints,
        subscriptions,
        portal,
        refusals,
        overview: overview.clone(),
        reload,
    };
    server.add_service(background_service("console sampler", Sampler(overview)));
    server.add_service(admin::service(&config.admin, app));
    Ok(server)
}

/// Runs until SIGTERM (the work under way finishes, within `grace`: see `shutdown.rs`) or
/// SIGINT (at once), and says how it stopped.
pub fn run(server: Server, grace: std::time::Duration) -> Stopped {
    let stopped = Arc::new(std::sync::Mutex::new(Stopped::default()));
    let signals = Signals {
        grace,
        stopped: stopped.clone(),
    };
    server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    let stopped = *stopped.lock().unwrap_or_else(|e| e.into_inner());
    stopped
}
