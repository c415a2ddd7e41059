//! What a config reload changes on the outbound side: the endpoints, the per-request
//! destinations' settings, `outbound.secrets`, the events' sources and the body limit.
//! Built whole from a config and swapped in whole: a message in flight keeps the endpoint
//! it started with; the next one finds the new.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::deliver::Endpoint;
use super::destinations::Destinations;
use super::egress_proxy::ProxyRoute;
use crate::config::{EventsConfig, OutboundConfig};
use crate::store::PacingStore;

pub struct Live {
    pub endpoints: Vec<Arc<Endpoint>>,
    pub destinations: Destinations,
    /// `outbound.secrets`, for `Hookgate-Secret-Ref`.
    pub secrets: HashMap<String, String>,
    pub events: EventsConfig,
    pub max_body: u64,
    /// The longest attempt of a configured endpoint (of a destination without endpoints):
    /// claims outlast it.
    pub longest_timeout: Duration,
}

/// Shared by the listener and the worker.
pub type LiveOutbound = Arc<ArcSwap<Live>>;

/// What every build shares and a reload does not change.
pub struct Parts {
    /// Receivers' limits, kept by endpoint name: a rebuilt endpoint keeps its slots.
    pub pacing: Arc<dyn PacingStore>,
    pub proxy: Option<Arc<ProxyRoute>>,
    pub time_scale: f64,
}

impl Live {
    pub fn build(config: &OutboundConfig, parts: &Parts) -> Result<Self, String> {
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| {
                Endpoint::new(e.clone(), parts.pacing.clone(), parts.time_scale)
                    .map(|e| Arc::new(e.with_proxy(parts.proxy.clone())))
                    .map_err(|err| format!("outbound endpoint {}: {err}", e.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secrets: HashMap<String, String> = config
            .secrets
            .iter()
            .map(|(n, s)| (n.clone(), s.expose().to_string()))
            .collect();
        let destinations = Destinations::new(
            secrets.clone(),
            config.allow_private_destinations.clone(),
            (
                config.destinations.clone(),
                config.destinations_tls.clone(),
                config.destinations_trace_propagation,
            ),
            parts.pacing.clone(),
            parts.proxy.clone(),
            parts.time_scale,
        );
        // As before reloads existed: the endpoints' longest, or the destinations' without
        // endpoints (a destination's longer timeout is not counted: see the worker's lease).
        let longest_timeout = endpoints
            .iter()
            .map(|e| e.config.policy.retry.timeout)
            .max()
            .unwrap_or(destinations.policy().retry.timeout);
        Ok(Live {
            endpoints,
            destinations,
            secrets,
            events: config.events.clone(),
            max_body: config.max_body,
            longest_timeout,
        })
    }
}
