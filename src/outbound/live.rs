//! What a config reload changes on the outbound side: the endpoints, the per-request
//! destinations' settings, `outbound.secrets`, the events' sources and the body limit.
//! Built whole from a config and swapped in whole: a message in flight keeps the endpoint
//! it started with; the next one finds the new.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::catalog::Catalog;
use super::deliver::Endpoint;
use super::destinations::Destinations;
use super::egress_proxy::ProxyRoute;
use super::receiver_auth::Credentials;
use crate::config::{EventsConfig, OutboundConfig};
use crate::store::PacingStore;

pub struct Live {
    pub endpoints: Vec<Arc<Endpoint>>,
    /// The apps behind `deliver: queue` routes, under their queue names (`route:NAME`).
    pub routes: Vec<Arc<Endpoint>>,
    pub destinations: Destinations,
    /// `outbound.secrets`, for `Hookgate-Secret-Ref`.
    pub secrets: HashMap<String, String>,
    pub events: EventsConfig,
    /// `event_types`, with their schemas compiled.
    pub catalog: Catalog,
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
    /// What `config` says; endpoints that `earlier` (the running build, on a reload) has
    /// under the same name and URL keep their circuit breakers.
    pub fn build(
        config: &OutboundConfig,
        parts: &Parts,
        earlier: Option<&Live>,
    ) -> Result<Self, String> {
        let earlier_endpoint = |name: &str| {
            earlier.and_then(|live| live.endpoints.iter().find(|e| e.config.name == name))
        };
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| {
                Endpoint::new(e.clone(), parts.pacing.clone(), parts.time_scale)
                    .map(|new| new.continuing(earlier_endpoint(&e.name).map(|e| &**e)))
                    .map(|e| Arc::new(e.with_proxy(parts.proxy.clone())))
                    .map_err(|err| format!("outbound endpoint {}: {err}", e.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let routes: Vec<Arc<Endpoint>> = config
            .routes
            .iter()
            .map(|route| {
                let endpoint = Endpoint::for_route(route, parts.pacing.clone(), parts.time_scale);
                let name = &endpoint.config.name;
                let earlier =
                    earlier.and_then(|l| l.routes.iter().find(|e| &e.config.name == name));
                Arc::new(endpoint.continuing(earlier.map(|e| &**e)))
            })
            .collect();
        let secrets: HashMap<String, String> = config
            .secrets
            .iter()
            .map(|(n, s)| (n.clone(), s.expose().to_string()))
            .collect();
        let credentials = config
            .destinations_auth
            .as_ref()
            .map(Credentials::new)
            .transpose()
            .map_err(|e| format!("outbound.destinations.auth: {e}"))?;
        let destinations = Destinations::new(
            secrets.clone(),
            config.allow_private_destinations.clone(),
            (
                config.destinations.clone(),
                config.destinations_tls.clone(),
                config.destinations_trace_propagation,
                credentials.map(Arc::new),
            ),
            parts.pacing.clone(),
            parts.proxy.clone(),
            parts.time_scale,
        );
        // As before reloads existed: the endpoints' longest, or the destinations' without
        // endpoints (a destination's longer timeout is not counted: see the worker's lease).
        let longest_timeout = endpoints
            .iter()
            .chain(&routes)
            .map(|e| e.config.policy.retry.timeout)
            .max()
            .unwrap_or(destinations.policy().retry.timeout);
        Ok(Live {
            endpoints,
            routes,
            destinations,
            secrets,
            events: config.events.clone(),
            catalog: Catalog::new(&config.event_types, config.events.validate)?,
            max_body: config.max_body,
            longest_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(endpoints: &str) -> OutboundConfig {
        let text = format!("outbound:\n  endpoints:\n{endpoints}");
        crate::config::load_str("t.yaml", &text, &|_| None)
            .unwrap()
            .outbound
            .unwrap()
    }

    fn endpoint(name: &str, url: &str) -> String {
        format!("    - {{ name: {name}, url: \"{url}\", sign: {{ scheme: rejento, secret: s }}, circuit: {{ failures: 1 }} }}\n")
    }

    #[test]
    fn a_reload_keeps_the_circuits_of_endpoints_that_keep_name_and_url() {
        let (store, _dir) = crate::store::test_store(10);
        let parts = Parts {
            pacing: store.pacing(),
            proxy: None,
            time_scale: 1.0,
        };
        let before = outbound(
            &(endpoint("a", "http://127.0.0.1:9/a") + &endpoint("b", "http://127.0.0.1:9/b")),
        );
        let running = Live::build(&before, &parts, None).unwrap();
        for e in &running.endpoints {
            assert!(e.pacing.record(false, 0).is_some(), "one failure opens it");
        }
        // `a` keeps its URL; `b` now points elsewhere: a new receiver, a closed circuit.
        let after = outbound(
            &(endpoint("a", "http://127.0.0.1:9/a") + &endpoint("b", "http://127.0.0.1:9/other")),
        );
        let reloaded = Live::build(&after, &parts, Some(&running)).unwrap();
        let open = |name: &str| {
            let e = reloaded
                .endpoints
                .iter()
                .find(|e| e.config.name == name)
                .unwrap();
            e.pacing.is_open(1_000)
        };
        assert!(open("a"));
        assert!(!open("b"));
    }
}
