//! The outbound side as Pingora services: the listener the app posts to, and the delivery
//! worker in the background, sharing the queue and the endpoints (and so their limits).

use std::sync::Arc;

use arc_swap::ArcSwap;

use pingora::apps::http_app::HttpServer;
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::services::listening::Service;
use tokio::sync::Notify;

use super::egress_proxy::ProxyRoute;
use super::history::{self, HistoryService};
use super::live::{Live, LiveOutbound, Parts};
use super::operational::{self, Publisher};
use super::sealing::Sealing;
use super::subscriptions::Subscriptions;
use super::worker::{DeliveryWorker, WorkerService};
use super::OutboundApp;
use crate::config::OutboundConfig;
use crate::store::reseal::Resealer;
use crate::store::{HistoryStore, Queue, Store};

pub struct OutboundServices {
    /// `None` when only `deliver: queue` routes use the worker.
    pub listener: Option<Service<HttpServer<OutboundApp>>>,
    /// Rung when a message is stored, so the worker claims it at once.
    pub wake: Arc<Notify>,
    pub worker: GenBackgroundService<WorkerService>,
    /// Stores hookgate's own events as the worker and the API note them.
    pub operational: GenBackgroundService<Publisher>,
    /// For the admin API's `/admin/deliveries`.
    pub queue: Arc<dyn Queue>,
    /// For the admin API's `/admin/subscriptions`.
    pub subscriptions: Arc<Subscriptions>,
    /// What a config reload replaces.
    pub reload: OutboundReload,
    /// The delivered messages, for the admin API and the portal.
    pub history: Arc<dyn HistoryStore>,
    /// Writes and sweeps the history in the background.
    pub history_service: GenBackgroundService<HistoryService>,
    /// Seals what the store holds as `store.encryption` says, once at start.
    pub sealing: GenBackgroundService<Sealing>,
    /// The same passes on demand (`hookgate store rotate-key`).
    pub resealer: Arc<Resealer>,
}

/// A config reload's way in: the state the listener and worker share, and what it is built from.
pub struct OutboundReload {
    pub live: LiveOutbound,
    pub parts: Parts,
    pub subscriptions: Arc<Subscriptions>,
}

impl OutboundReload {
    /// Builds what `config` (a reload's) says, ready to [`apply`](Self::apply).
    pub fn prepare(&self, config: &OutboundConfig) -> Result<Live, String> {
        Live::build(config, &self.parts, Some(&self.live.load()))
    }

    /// Messages from now on use `live`; the YAML's subscriptions are written into the
    /// store again before the next publish or delivery reads them.
    pub fn apply(&self, live: Live, config: &OutboundConfig) {
        self.live.store(Arc::new(live));
        self.subscriptions.reconfigure(config.subscriptions.clone());
    }
}

/// The outbound listener and worker over `store`'s queue.
pub fn services(config: &OutboundConfig, store: &Store) -> Result<OutboundServices, String> {
    let queue = store.queue()?;
    let parts = Parts {
        // One for the listener's sync deliveries and the worker: they share the limits.
        pacing: store.pacing(),
        proxy: config.proxy.as_ref().map(ProxyRoute::start).transpose()?,
        time_scale: retry_time_scale()?,
    };
    let live: LiveOutbound = Arc::new(ArcSwap::from_pointee(Live::build(config, &parts, None)?));
    let (notices, noticed) = operational::channel(config.operational.clone());
    let subscription_store = store.subscriptions()?;
    let subscriptions = Arc::new(Subscriptions::new(
        subscription_store.clone(),
        config.subscriptions.clone(),
        config.allow_private_destinations.clone(),
        parts.pacing.clone(),
        parts.proxy.clone(),
        parts.time_scale,
        notices,
    ));
    let wake = Arc::new(Notify::new());
    let app = OutboundApp {
        queue: queue.clone(),
        live: live.clone(),
        allow: config.allow_private_destinations.clone(),
        connector: pingora::connectors::http::Connector::new(None),
        time_scale: parts.time_scale,
        wake: wake.clone(),
        subscriptions: subscriptions.clone(),
    };
    let listener = config.listen.map(|listen| {
        let mut listener = Service::new("outbound".to_string(), HttpServer::new_app(app));
        listener.add_tcp(&listen.to_string());
        listener
    });
    let history_store = store.history()?;
    let resealer = Arc::new(Resealer::new(
        store.clone(),
        Some(subscription_store.clone()),
        Some(queue.clone()),
        Some(history_store.clone()),
    ));
    let (history_writer, history_service) =
        history::history(history_store.clone(), queue.clone(), config);
    let worker = DeliveryWorker::new(
        queue.clone(),
        live.clone(),
        subscriptions.clone(),
        config.concurrency as usize,
        parts.time_scale,
        wake.clone(),
        history_writer,
    );
    let publisher = Publisher {
        notices: std::sync::Mutex::new(Some(noticed)),
        subscriptions: subscriptions.clone(),
        queue: queue.clone(),
        live: live.clone(),
        wake: wake.clone(),
    };
    Ok(OutboundServices {
        listener,
        operational: background_service("operational events", publisher),
        wake,
        worker: background_service("delivery", WorkerService(Arc::new(worker))),
        queue,
        subscriptions: subscriptions.clone(),
        history: history_store,
        history_service: background_service("delivery history", history_service),
        sealing: background_service(
            "store sealing",
            Sealing {
                resealer: resealer.clone(),
            },
        ),
        resealer,
        reload: OutboundReload {
            live,
            parts,
            subscriptions,
        },
    })
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
