//! The outbound side as Pingora services: the listener the app posts to, and the delivery
//! worker in the background, sharing the queue and the endpoints (and so their limits).

use std::collections::HashMap;
use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::services::listening::Service;
use tokio::sync::Notify;

use super::deliver::Endpoint;
use super::destinations::Destinations;
use super::egress_proxy::ProxyRoute;
use super::subscriptions::Subscriptions;
use super::worker::{DeliveryWorker, WorkerService};
use super::OutboundApp;
use crate::config::OutboundConfig;
use crate::store::{Queue, Store};

pub struct OutboundServices {
    pub listener: Service<HttpServer<OutboundApp>>,
    pub worker: GenBackgroundService<WorkerService>,
    /// For the admin API's `/admin/deliveries`.
    pub queue: Arc<dyn Queue>,
    /// For the admin API's `/admin/subscriptions`.
    pub subscriptions: Arc<Subscriptions>,
}

/// The outbound listener and worker over `store`'s queue.
pub fn services(config: &OutboundConfig, store: &Store) -> Result<OutboundServices, String> {
    let queue = store.queue()?;
    let time_scale = retry_time_scale()?;
    // One for the listener's sync deliveries and the worker: they share the limits.
    let pacing = store.pacing();
    let proxy = config.proxy.as_ref().map(ProxyRoute::start).transpose()?;
    let endpoints = config
        .endpoints
        .iter()
        .map(|e| {
            Endpoint::new(e.clone(), pacing.clone(), time_scale)
                .map(|e| Arc::new(e.with_proxy(proxy.clone())))
                .map_err(|err| format!("outbound endpoint {}: {err}", e.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secrets: HashMap<String, String> = config
        .secrets
        .iter()
        .map(|(n, s)| (n.clone(), s.expose().to_string()))
        .collect();
    let subscriptions = Arc::new(Subscriptions::new(
        store.subscriptions()?,
        config.subscriptions.clone(),
        config.allow_private_destinations.clone(),
        pacing.clone(),
        proxy.clone(),
        time_scale,
    ));
    let wake = Arc::new(Notify::new());
    let app = OutboundApp {
        queue: queue.clone(),
        endpoints: endpoints.clone(),
        max_body: config.max_body,
        secrets: secrets.clone(),
        allow: config.allow_private_destinations.clone(),
        connector: pingora::connectors::http::Connector::new(None),
        time_scale,
        wake: wake.clone(),
        subscriptions: subscriptions.clone(),
        events: config.events.clone(),
    };
    let mut listener = Service::new("outbound".to_string(), HttpServer::new_app(app));
    listener.add_tcp(&config.listen.to_string());
    let destinations = Destinations::new(
        secrets,
        config.allow_private_destinations.clone(),
        (
            config.destinations.clone(),
            config.destinations_tls.clone(),
            config.destinations_trace_propagation,
        ),
        pacing,
        proxy,
        time_scale,
    );
    let worker = DeliveryWorker::new(
        queue.clone(),
        endpoints,
        destinations,
        subscriptions.clone(),
        config.concurrency as usize,
        time_scale,
        wake,
    );
    Ok(OutboundServices {
        listener,
        worker: background_service("delivery", WorkerService(Arc::new(worker))),
        queue,
        subscriptions,
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
