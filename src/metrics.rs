//! Prometheus metrics (OpenMetrics text on the admin port's `/metrics`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// Label value for requests whose path matched no route.
pub const UNMATCHED_ROUTE: &str = "_unmatched";

mod labels;
pub use labels::*;

pub struct Metrics {
    registry: Registry,
    pub trace_spans: Family<SpanLabels, Counter>,
    pub config_reloads: Family<ReloadLabels, Counter>,
    pub config_info: Family<ConfigLabels, Gauge>,
    pub store_errors: Family<StoreLabels, Counter>,
    pub store_duration: Family<StoreLabels, Histogram>,
    pub outbound_queue_depth: Family<QueueLabels, Gauge>,
    pub outbound_endpoint_state: Family<EndpointLabels, Gauge>,
    pub outbound_oldest_pending: Family<EndpointLabels, Gauge>,
    pub inbound_queue_depth: Family<InboundQueueLabels, Gauge>,
    pub inbound_queue_oldest: Family<QueuedRouteLabels, Gauge>,
    pub inbound_route_paused: Family<QueuedRouteLabels, Gauge>,
    pub outbound_circuit_open: Family<EndpointLabels, Gauge>,
    pub outbound_messages: Family<OutboundLabels, Counter>,
    pub outbound_attempts: Family<AttemptLabels, Counter>,
    pub outbound_attempt_duration: Family<EndpointLabels, Histogram>,
    pub outbound_end_to_end: Histogram,
    pub upstream_responses: Family<UpstreamLabels, Counter>,
    pub dedupe_store_errors: Counter,
    pub inbound_verified: Family<VerifiedLabels, Counter>,
    pub inbound_handshakes: Family<HandshakeLabels, Counter>,
    pub portal_requests: Family<PortalLabels, Counter>,
    pub operational_events: Family<OperationalLabels, Counter>,
    pub history_rows: Family<HistoryLabels, Counter>,
    pub dead_letters_expired: Counter,
    pub token_requests: Family<TokenLabels, Counter>,
    pub decrypt_errors: Family<SealedLabels, Counter>,
    pub resealed: Family<SealedLabels, Counter>,
    pub inbound_requests: Family<RequestLabels, Counter>,
    pub inbound_duration: Family<RouteLabels, Histogram>,
    pub inbound_errors: Family<RejectLabels, Counter>,
    pub rate_limit_keys_full: Family<RouteLabels, Counter>,
    pub inbound_connections: Gauge,
    pub upstream_resends: Counter,
    pub store_up: Gauge,
    pub inbound_connections_closed: Family<ConnectionLabels, Counter>,
    pub events_published: Family<EventLabels, Counter>,
    pub event_deliveries: Family<EventTypeLabels, Counter>,
    /// The event types labelled so far.
    event_types: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("hookgate");
        let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        registry.register("build", "hookgate build information", build);

        let inbound_connections = Gauge::default();
        registry.register(
            "inbound_connections",
            "Client connections open on the inbound port",
            inbound_connections.clone(),
        );
        let inbound_connections_closed = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "inbound_connections_closed",
            "Client connections hookgate refused or closed itself, by reason",
            inbound_connections_closed.clone(),
        );

        let store_up = Gauge::default();
        store_up.set(1);
        registry.register(
            "store_up",
            "1 while the embedded store's files take writes, 0 while a disk or I/O error keeps them from it",
            store_up.clone(),
        );
        let upstream_resends = Counter::default();
        registry.register(
            "inbound_upstream_resends",
            "Requests sent to the app again because a pooled connection was closed before the request was written",
            upstream_resends.clone(),
        );

        let inbound_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "inbound_requests",
            "Inbound requests answered, by route, outcome and status",
            inbound_requests.clone(),
        );
        let inbound_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "inbound_request_duration",
            "Time from request head to the end of hookgate's answer, by route",
            Unit::Seconds,
            inbound_duration.clone(),
        );
        let inbound_errors = Family::<RejectLabels, Counter>::default();
        registry.register(
            "inbound_errors",
            "Inbound requests answered by hookgate itself with an error, by route and error code",
            inbound_errors.clone(),
        );
        let rate_limit_keys_full = Family::<RouteLabels, Counter>::default();
        registry.register(
            "rate_limit_keys_full",
            "Rate-limited requests met with a route's limiter holding its maximum of keys (rate_limit.max_keys), by route",
            rate_limit_keys_full.clone(),
        );
        let inbound_verified = Family::<VerifiedLabels, Counter>::default();
        registry.register(
            "inbound_verified",
            "Inbound requests whose signature verified, by route and by which secret matched",
            inbound_verified.clone(),
        );
        let inbound_handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "inbound_handshakes",
            "Providers' ownership checks hookgate answered or refused itself, by route, provider and outcome",
            inbound_handshakes.clone(),
        );
        let portal_requests = Family::<PortalLabels, Counter>::default();
        registry.register(
            "portal_requests",
            "Tenant portal API calls, served or refused for their token, by outcome",
            portal_requests.clone(),
        );
        let operational_events = Family::<OperationalLabels, Counter>::default();
        registry.register(
            "operational_events",
            "hookgate's own events about subscriptions and deliveries, by type and outcome",
            operational_events.clone(),
        );
        let history_rows = Family::<HistoryLabels, Counter>::default();
        registry.register(
            "history_rows",
            "Delivered messages written to the delivery history, swept from it, or not kept, by outcome",
            history_rows.clone(),
        );
        let dead_letters_expired = Counter::default();
        registry.register(
            "outbound_dead_letters_expired",
            "Dead letters deleted because they were accepted longer ago than outbound.dead_letter_ttl",
            dead_letters_expired.clone(),
        );
        let token_requests = Family::<TokenLabels, Counter>::default();
        registry.register(
            "outbound_oauth2_token_requests",
            "Requests to receivers' OAuth2 token endpoints (auth.oauth2), by outcome",
            token_requests.clone(),
        );
        let decrypt_errors = Family::<SealedLabels, Counter>::default();
        registry.register(
            "store_decrypt_errors",
            "Values the store holds sealed (store.encryption) that did not open: altered, moved, or sealed with a key not configured",
            decrypt_errors.clone(),
        );
        let resealed = Family::<SealedLabels, Counter>::default();
        registry.register(
            "store_resealed",
            "Records sealed anew by a reseal pass (store.encryption: at the first start with a new key, or hookgate store rotate-key), by table: subscriptions, queue, history",
            resealed.clone(),
        );
        let dedupe_store_errors = Counter::default();
        registry.register(
            "dedupe_store_errors",
            "Dedupe store operations that failed (claims refused when full, writes lost)",
            dedupe_store_errors.clone(),
        );
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Shared store (Redis) operations that failed or timed out, by operation",
            store_errors.clone(),
        );
        let store_duration = Family::<StoreLabels, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~3 s
            Histogram::new(exponential_buckets(0.0001, 2.0, 15))
        });
        registry.register_with_unit(
            "store_operation_duration",
            "Time of one shared store (Redis) operation, by operation",
            Unit::Seconds,
            store_duration.clone(),
        );
        let upstream_responses = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_responses",
            "Answers from the app, by route and status class",
            upstream_responses.clone(),
        );
        let outbound_messages = Family::<OutboundLabels, Counter>::default();
        registry.register(
            "outbound_messages",
            "Outbound delivery attempts by what followed: delivered, retry_scheduled or dead",
            outbound_messages.clone(),
        );
        let outbound_attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "outbound_attempts",
            "Outbound delivery attempts by endpoint and the receiver's status class",
            outbound_attempts.clone(),
        );
        let outbound_attempt_duration = Family::<EndpointLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "outbound_attempt_duration",
            "Time of one delivery attempt, by endpoint",
            Unit::Seconds,
            outbound_attempt_duration.clone(),
        );
        // 10 ms .. ~1.5 days: retries span hours.
        let outbound_end_to_end = Histogram::new(exponential_buckets(0.01, 4.0, 12));
        registry.register_with_unit(
            "outbound_end_to_end",
            "Time from accepting a message to its successful delivery",
            Unit::Seconds,
            outbound_end_to_end.clone(),
        );
        let outbound_queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "outbound_queue_depth",
            "Messages in the outbound queue by endpoint and state (pending, scheduled, dead)",
            outbound_queue_depth.clone(),
        );
        let outbound_endpoint_state = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "outbound_endpoint_state",
            "1 while an outbound endpoint is enabled, 0 while it is disabled",
            outbound_endpoint_state.clone(),
        );
        let outbound_oldest_pending = Family::<EndpointLabels, Gauge>::default();
        registry.register_with_unit(
            "outbound_oldest_pending_age",
            "Age of the oldest message not yet delivered (pending or scheduled), by endpoint; 0 when none",
            Unit::Seconds,
            outbound_oldest_pending.clone(),
        );
        let inbound_queue_depth = Family::<InboundQueueLabels, Gauge>::default();
        registry.register(
            "inbound_queue_depth",
            "Webhooks a deliver: queue route holds for the app, by route and state",
            inbound_queue_depth.clone(),
        );
        let inbound_queue_oldest = Family::<QueuedRouteLabels, Gauge>::default();
        registry.register_with_unit(
            "inbound_queue_oldest",
            "Age of the oldest webhook a deliver: queue route has not yet delivered to the app; 0 when none",
            Unit::Seconds,
            inbound_queue_oldest.clone(),
        );
        let inbound_route_paused = Family::<QueuedRouteLabels, Gauge>::default();
        registry.register(
            "inbound_route_paused",
            "1 while a deliver: queue route is paused (webhooks are stored, none sent to the app), by route",
            inbound_route_paused.clone(),
        );
        let outbound_circuit_open = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "outbound_circuit_open",
            "1 while an endpoint's circuit breaker holds deliveries back after failures",
            outbound_circuit_open.clone(),
        );
        let events_published = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_published",
            "Events published to POST /events, by type and outcome (fanned_out, unmatched, duplicate)",
            events_published.clone(),
        );
        let event_deliveries = Family::<EventTypeLabels, Counter>::default();
        registry.register(
            "event_deliveries",
            "Deliveries created by published events (one per matching subscription), by event type",
            event_deliveries.clone(),
        );
        let trace_spans = Family::<SpanLabels, Counter>::default();
        registry.register(
            "trace_spans",
            "Trace spans recorded, by outcome (exported, queue_full, export_failed)",
            trace_spans.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP, the admin API or a change of the file), by result: applied, refused (the file fails its check), held (it would lower the protection of a path)",
            config_reloads.clone(),
        );
        let config_info = Family::<ConfigLabels, Gauge>::default();
        registry.register(
            "config_info",
            "1 for the hash of the config file running",
            config_info.clone(),
        );
        Metrics {
            trace_spans,
            config_reloads,
            config_info,
            events_published,
            event_deliveries,
            event_types: Default::default(),
            registry,
            store_errors,
            store_duration,
            outbound_circuit_open,
            outbound_queue_depth,
            outbound_endpoint_state,
            outbound_oldest_pending,
            inbound_queue_depth,
            inbound_queue_oldest,
            inbound_route_paused,
            outbound_messages,
            outbound_attempts,
            outbound_attempt_duration,
            outbound_end_to_end,
            upstream_responses,
            dedupe_store_errors,
            inbound_verified,
            inbound_handshakes,
            portal_requests,
            operational_events,
            history_rows,
            dead_letters_expired,
            token_requests,
            decrypt_errors,
            resealed,
            inbound_requests,
            inbound_duration,
            inbound_errors,
            rate_limit_keys_full,
            inbound_connections,
            inbound_connections_closed,
            upstream_resends,
            store_up,
        }
    }

    pub fn record_connection_closed(&self, reason: &'static str) {
        self.inbound_connections_closed
            .get_or_create(&ConnectionLabels { reason })
            .inc();
    }

    pub fn record_inbound(
        &self,
        route: &'static str,
        outcome: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.inbound_requests
            .get_or_create(&RequestLabels {
                route,
                outcome,
                status,
            })
            .inc();
        self.inbound_duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_inbound_error(&self, route: &'static str, error: &'static str) {
        self.inbound_errors
            .get_or_create(&RejectLabels { route, error })
            .inc();
    }

    pub fn record_rate_limit_keys_full(&self, route: &'static str) {
        self.rate_limit_keys_full
            .get_or_create(&RouteLabels { route })
            .inc();
    }

    pub fn record_verified(&self, route: &'static str, secret_index: usize) {
        self.inbound_verified
            .get_or_create(&VerifiedLabels {
                route,
                secret: secret_index as u32,
            })
            .inc();
    }

    pub fn record_handshake(
        &self,
        route: &'static str,
        provider: &'static str,
        outcome: &'static str,
    ) {
        self.inbound_handshakes
            .get_or_create(&HandshakeLabels {
                route,
                provider,
                outcome,
            })
            .inc();
    }

    pub fn record_upstream(&self, route: &'static str, status: u16) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other",
        };
        self.upstream_responses
            .get_or_create(&UpstreamLabels { route, class })
            .inc();
    }

    pub fn record_outbound_message(&self, endpoint: &str, outcome: &'static str) {
        self.outbound_messages
            .get_or_create(&OutboundLabels {
                endpoint: endpoint.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn record_dead_letters_expired(&self, count: usize) {
        self.dead_letters_expired.inc_by(count as u64);
    }

    pub fn record_token_request(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.token_requests
            .get_or_create(&TokenLabels { outcome })
            .inc();
    }

    pub fn record_decrypt_error(&self, table: &'static str) {
        self.decrypt_errors
            .get_or_create(&SealedLabels { table })
            .inc();
    }

    pub fn record_resealed(&self, table: &'static str, records: u64) {
        self.resealed
            .get_or_create(&SealedLabels { table })
            .inc_by(records);
    }

    pub fn record_history(&self, outcome: &'static str, rows: usize) {
        self.history_rows
            .get_or_create(&HistoryLabels { outcome })
            .inc_by(rows as u64);
    }

    pub fn record_operational(&self, event_type: &'static str, outcome: &'static str) {
        self.operational_events
            .get_or_create(&OperationalLabels {
                event_type,
                outcome,
            })
            .inc();
    }

    /// Counts a published event and the deliveries it made.
    pub fn record_event(&self, event_type: &str, outcome: &'static str, deliveries: usize) {
        let event_type = {
            let mut seen = self.event_types.lock().unwrap_or_else(|e| e.into_inner());
            if seen.contains(event_type) || seen.len() < MAX_EVENT_TYPES {
                seen.insert(event_type.to_string());
                event_type.to_string()
            } else {
                "other".to_string()
            }
        };
        if deliveries > 0 && outcome != "duplicate" {
            self.event_deliveries
                .get_or_create(&EventTypeLabels {
                    event_type: event_type.clone(),
                })
                .inc_by(deliveries as u64);
        }
        self.events_published
            .get_or_create(&EventLabels {
                event_type,
                outcome,
            })
            .inc();
    }

    pub fn record_outbound_attempt(&self, endpoint: &str, status: Option<u16>, latency_ms: u64) {
        let status_class = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(500..=599) => "5xx",
            Some(_) => "other",
            None => "error",
        };
        self.outbound_attempts
            .get_or_create(&AttemptLabels {
                endpoint: endpoint.to_string(),
                status_class,
            })
            .inc();
        self.outbound_attempt_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_string(),
            })
            .observe(latency_ms as f64 / 1000.0);
    }

    pub fn record_outbound_end_to_end(&self, millis: u64) {
        self.outbound_end_to_end.observe(millis as f64 / 1000.0);
    }

    /// The registry in OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_counters() {
        let metrics = Metrics::new();
        metrics.record_inbound("github", "forwarded", 200, Duration::from_millis(3));
        metrics.record_inbound_error("github", "body_too_large");
        let text = metrics.render();
        assert!(text.contains("hookgate_build_info{version=\""), "{text}");
        assert!(
            text.contains("hookgate_inbound_requests_total{route=\"github\",outcome=\"forwarded\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hookgate_inbound_request_duration_seconds_count{route=\"github\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "hookgate_inbound_errors_total{route=\"github\",error=\"body_too_large\"} 1"
            ),
            "{text}"
        );
    }
}
