//! The delivery worker: takes due messages from the queue, attempts them, and records
//! what follows (delivered, retry at a time, or dead).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::{Notify, Semaphore};

use super::deliver::Endpoint;
use super::outcome::{disable_endpoint, record_message_outcome};
use super::pacing::Admit;
use super::retry::next_step;
use crate::clock::now_ms;
use crate::config::{
    parse_destination, retry, Cidr, CircuitConfig, DeliveryMode, EndpointConfig, Secret,
    SignConfig, DYNAMIC_ENDPOINT,
};
use crate::metrics::METRICS;
use crate::schemes::SchemeSpec;
use crate::store::queue::{Attempt, Next, Queue, Record, State, Target};

/// Deliveries in flight at once, over all endpoints.
const CONCURRENCY: usize = 64;
/// A claim lasts an attempt's timeout plus this: the attempt itself is cut off at its
/// timeout, and recording it takes a disk commit.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often a disabled endpoint's messages are looked at again.
const DISABLED_RECHECK: Duration = Duration::from_secs(1);
/// How often the queue-depth and endpoint-state gauges are refreshed (a scan of the queue).
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// How often the queue is asked for due messages (scaled down with the retry delays, so
/// a test's scaled schedule keeps its shape).
const TICK: Duration = Duration::from_millis(50);

/// What per-request destinations need: named secrets and the SSRF allow-list.
#[derive(Default)]
pub struct Dynamic {
    pub secrets: HashMap<String, String>,
    pub allow: Vec<Cidr>,
}

pub struct DeliveryWorker {
    queue: Arc<dyn Queue>,
    dynamic: Dynamic,
    endpoints: HashMap<String, Arc<Endpoint>>,
    /// A claim outlives any attempt: after it lapses, another worker may try again.
    lease: Duration,
    /// Multiplies every retry delay; 1.0 in production, tiny in tests.
    time_scale: f64,
    /// Rung when a message is accepted and when a delivery ends: the worker looks for due
    /// work at once instead of at its next tick.
    wake: Arc<Notify>,
}

impl DeliveryWorker {
    pub fn new(
        queue: Arc<dyn Queue>,
        endpoints: Vec<Arc<Endpoint>>,
        dynamic: Dynamic,
        time_scale: f64,
        wake: Arc<Notify>,
    ) -> Self {
        let longest = endpoints
            .iter()
            .map(|e| e.config.retry.timeout)
            .max()
            .unwrap_or(Duration::from_secs(30));
        DeliveryWorker {
            queue,
            dynamic,
            lease: longest + LEASE_MARGIN,
            endpoints: endpoints
                .into_iter()
                .map(|e| (e.config.name.clone(), e))
                .collect(),
            time_scale,
            wake,
        }
    }

    /// The endpoint a per-request destination stands for, with the default policy.
    fn dynamic_endpoint(&self, target: &Target) -> Result<Endpoint, String> {
        let secret = match (&target.secret, &target.secret_ref) {
            (Some(secret), _) => secret.clone(),
            (None, Some(name)) => self
                .dynamic
                .secrets
                .get(name)
                .cloned()
                .ok_or_else(|| format!("secret {name:?} is no longer configured"))?,
            (None, None) => return Err("no secret to sign with".into()),
        };
        let config = EndpointConfig {
            name: DYNAMIC_ENDPOINT.to_string(),
            url: parse_destination(&target.url)?,
            url_match: None,
            sign: SignConfig {
                scheme: SchemeSpec::Named(target.scheme.clone()),
                secrets: vec![Secret::new(secret)],
            },
            retry: retry::preset("standard-webhooks").expect("preset"),
            concurrency: 16,
            rate_limit: None,
            circuit: CircuitConfig::default(),
            mode: DeliveryMode::Async,
        };
        Endpoint::guarded(config, self.dynamic.allow.clone())
    }

    /// Names of endpoints an operator (or a 410) disabled.
    async fn disabled_endpoints(&self) -> std::collections::HashSet<String> {
        match self.queue.endpoint_states().await {
            Ok(states) => states
                .into_iter()
                .filter(|(_, s)| !s.enabled)
                .map(|(name, _)| name)
                .collect(),
            _ => Default::default(),
        }
    }

    /// Sets the queue-depth and endpoint-state gauges from the queue.
    async fn refresh_gauges(&self) {
        let (Ok(records), Ok(states)) = (
            self.queue.list(None, None).await,
            self.queue.endpoint_states().await,
        ) else {
            return;
        };
        let now = now_ms();
        let mut depth: HashMap<(String, &'static str), i64> = HashMap::new();
        let mut oldest: HashMap<String, u64> = HashMap::new();
        let mut names: std::collections::BTreeSet<String> =
            self.endpoints.keys().cloned().collect();
        for record in &records {
            let state = match record.state {
                State::Dead => "dead",
                State::Pending if record.due_ms <= now => "pending",
                State::Pending => "scheduled",
            };
            *depth.entry((record.endpoint.clone(), state)).or_default() += 1;
            if state != "dead" {
                let age = oldest.entry(record.endpoint.clone()).or_default();
                *age = (*age).max(now.saturating_sub(record.created_ms) / 1000);
            }
            names.insert(record.endpoint.clone());
        }
        for name in &names {
            METRICS
                .outbound_oldest_pending
                .get_or_create(&crate::metrics::EndpointLabels {
                    endpoint: name.clone(),
                })
                .set(oldest.get(name).copied().unwrap_or(0) as i64);
            for state in ["pending", "scheduled", "dead"] {
                let count = depth.get(&(name.clone(), state)).copied().unwrap_or(0);
                METRICS
                    .outbound_queue_depth
                    .get_or_create(&crate::metrics::QueueLabels {
                        endpoint: name.clone(),
                        state,
                    })
                    .set(count);
            }
        }
        for name in self.endpoints.keys() {
            let enabled = states
                .iter()
                .find(|(n, _)| n == name)
                .is_none_or(|(_, s)| s.enabled);
            METRICS
                .outbound_endpoint_state
                .get_or_create(&crate::metrics::EndpointLabels {
                    endpoint: name.clone(),
                })
                .set(i64::from(enabled));
        }
    }

    async fn deliver(self: Arc<Self>, connector: Arc<Connector>, record: Record, body: Vec<u8>) {
        let endpoint = match &record.target {
            Some(target) => self.dynamic_endpoint(target).map(Arc::new),
            None => self
                .endpoints
                .get(&record.endpoint)
                .cloned()
                .ok_or_else(|| format!("endpoint {} is no longer configured", record.endpoint)),
        };
        let (attempt, next) = match endpoint {
            Ok(endpoint) => {
                let timeout = endpoint.config.retry.timeout;
                let outcome = endpoint.attempt(&connector, &record, &body, timeout).await;
                let attempt = record.round_attempts + 1;
                let next = next_step(
                    &endpoint.config.retry,
                    attempt,
                    &outcome,
                    self.time_scale,
                    now_ms(),
                );
                endpoint.record_outcome(&outcome, now_ms());
                if outcome.gone && record.target.is_none() {
                    disable_endpoint(
                        &self.queue,
                        &record.endpoint,
                        "the receiver answered 410 Gone",
                    )
                    .await;
                }
                (outcome.attempt, next)
            }
            Err(error) => {
                let attempt = Attempt {
                    at_ms: now_ms(),
                    status: None,
                    error: Some(error),
                    latency_ms: 0,
                    response: String::new(),
                };
                (attempt, Next::Dead)
            }
        };
        let outcome = record_message_outcome(&record.endpoint, record.created_ms, next);
        tracing::info!(endpoint = %record.endpoint, delivery_id = %record.id, status = ?attempt.status, error = ?attempt.error, outcome, "delivery attempt");
        match self.queue.finish_attempt(&record, attempt, next).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery_id = %record.id, "the attempt outlived its claim; the message's current claim decides what follows")
            }
            // The lease lapses and the message is attempted again: nothing is lost.
            Err(e) => {
                tracing::error!(delivery_id = %record.id, error = %e, "could not record a delivery attempt")
            }
        }
    }
}

/// The worker as a Pingora background service, with its own runtime.
pub struct WorkerService(pub Arc<DeliveryWorker>);

#[async_trait]
impl BackgroundService for WorkerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let worker = self.0.clone();
        let connector = Arc::new(Connector::new(None));
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let tick_every = TICK
            .mul_f64(worker.time_scale)
            .clamp(Duration::from_millis(1), TICK);
        let mut tick = tokio::time::interval(tick_every);
        let mut last_gauges = std::time::Instant::now() - GAUGES_EVERY;
        let mut queue_down = false;
        loop {
            // The tick is for scheduled retries and lapsed leases; new messages and freed
            // delivery slots wake the worker at once.
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
                _ = worker.wake.notified() => {}
            }
            if last_gauges.elapsed() >= GAUGES_EVERY {
                worker.refresh_gauges().await;
                last_gauges = std::time::Instant::now();
            }
            let free = permits.available_permits();
            if free == 0 {
                continue;
            }
            let lease_ms = worker.lease.as_millis() as u64;
            let claimed = match worker.queue.claim_due(now_ms(), lease_ms, free).await {
                Ok(claimed) => {
                    if std::mem::take(&mut queue_down) {
                        tracing::info!("the outbound queue is readable again");
                    }
                    claimed
                }
                Err(e) => {
                    // Once per outage, not on every tick.
                    if !std::mem::replace(&mut queue_down, true) {
                        tracing::error!(error = %e, "cannot read the outbound queue; retrying every tick");
                    }
                    continue;
                }
            };
            if claimed.is_empty() {
                continue;
            }
            // Read only when there is work: an idle worker touches nothing but the due index.
            let disabled = worker.disabled_endpoints().await;
            for (record, body) in claimed {
                // Held back messages wait in the queue, unattempted: a disabled endpoint
                // until it is enabled, a busy or paused one until it has room again.
                let wait = match worker
                    .endpoints
                    .get(&record.endpoint)
                    .filter(|_| record.target.is_none())
                    .map(|e| &e.pacing)
                {
                    _ if record.target.is_none() && disabled.contains(&record.endpoint) => {
                        Err(DISABLED_RECHECK)
                    }
                    Some(pacing) => match pacing.admit(now_ms()) {
                        Admit::Go(slot) => Ok(Some(slot)),
                        Admit::Wait(wait) => Err(wait),
                    },
                    None => Ok(None),
                };
                let slot = match wait {
                    Ok(slot) => slot,
                    Err(wait) => {
                        let later = now_ms() + wait.as_millis() as u64;
                        let _ = worker.queue.postpone(&record.id, later).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (worker, connector) = (worker.clone(), connector.clone());
                let wake = worker.wake.clone();
                tokio::spawn(async move {
                    worker.deliver(connector, record, body).await;
                    drop((permit, slot));
                    wake.notify_one();
                });
            }
        }
    }
}
