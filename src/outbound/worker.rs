//! The delivery worker: takes due messages from the queue, attempts them, and records
//! what follows (delivered, retry at a time, or dead).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::{Notify, Semaphore};

use super::deliver::Endpoint;
use super::history::HistoryWriter;
use super::live::LiveOutbound;
use super::operational::Fate;
use super::outcome::{disable_endpoint, pause_endpoint, record_message_outcome};
use super::retry::next_step;
use super::subscriptions::index::Index;
use super::subscriptions::{Subscriptions, MAX_TIMEOUT};
use crate::clock::now_ms;
use crate::metrics::{EndpointLabels, InboundQueueLabels, QueueLabels, QueuedRouteLabels, METRICS};
use crate::store::queue::{Attempt, Bucket, Depth, Next, Queue, Record};
use crate::store::subscriptions::DeliveryNote;
use crate::telemetry::log_ids;

/// A claim lasts an attempt's timeout plus this: the attempt itself is cut off at its
/// timeout, and recording it takes a disk commit.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often a disabled endpoint's messages are looked at again.
const DISABLED_RECHECK: Duration = Duration::from_secs(1);
/// How often the queue-depth and endpoint-state gauges are refreshed, from counts the
/// queue keeps.
const GAUGES_EVERY: Duration = Duration::from_secs(1);
/// The longest the worker sleeps without looking at the queue: between wake-ups it sleeps
/// until the earliest due time (a retry, a lapsed lease); this catches what it cannot
/// hear of, such as messages another replica accepted while its own slots were full.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// After a failed read of the queue, and the shortest sleep when something is due but
/// was not claimed (held back meanwhile).
const RETRY_READ: Duration = Duration::from_millis(50);

/// A message's endpoint, or why it has none (recorded as a failed attempt).
type Resolved = Result<Arc<Endpoint>, String>;
/// A claimed message and its body.
type Claimed = (Record, Vec<u8>);

pub struct DeliveryWorker {
    queue: Arc<dyn Queue>,
    /// The endpoints and destinations, replaced by a config reload.
    live: LiveOutbound,
    subscriptions: Arc<Subscriptions>,
    /// Deliveries in flight at once (`outbound.concurrency`).
    concurrency: usize,
    /// Where delivered messages go, for the delivery history.
    history: HistoryWriter,
    /// Multiplies every retry delay; 1.0 in production, tiny in tests.
    time_scale: f64,
    /// Rung when a message is accepted and when enough delivery slots are free: the worker
    /// looks for due work at once instead of sleeping until the next due time.
    wake: Arc<Notify>,
}

impl DeliveryWorker {
    pub fn new(
        queue: Arc<dyn Queue>,
        live: LiveOutbound,
        subscriptions: Arc<Subscriptions>,
        concurrency: usize,
        time_scale: f64,
        wake: Arc<Notify>,
        history: HistoryWriter,
    ) -> Self {
        DeliveryWorker {
            queue,
            live,
            subscriptions,
            concurrency,
            history,
            time_scale,
            wake,
        }
    }

    /// The endpoint a message goes to: a configured one, its per-request destination's,
    /// or its subscription's (looked up in `index`).
    fn endpoint_for(&self, record: &Record, index: &Index) -> Resolved {
        if let Some(event) = &record.event {
            return match index.by_id.get(&event.subscription) {
                Some(subscription) => self.subscriptions.endpoint(subscription, now_ms()),
                None => Err(format!("subscription {} was deleted", event.subscription)),
            };
        }
        let live = self.live.load();
        if record.inbound.is_some() {
            return live
                .routes
                .iter()
                .find(|e| e.config.name == record.endpoint)
                .cloned()
                .ok_or_else(|| format!("{} is no longer a deliver: queue route", record.endpoint));
        }
        match &record.target {
            Some(target) => live.destinations.endpoint(target, now_ms()),
            None => live
                .endpoints
                .iter()
                .find(|e| e.config.name == record.endpoint)
                .cloned()
                .ok_or_else(|| format!("endpoint {} is no longer configured", record.endpoint)),
        }
    }

    /// Claimed messages by the endpoint they go to, in the order claimed, so each
    /// endpoint's limits are asked once for all of its messages.
    fn by_endpoint(&self, claimed: Vec<Claimed>, index: &Index) -> Vec<(Resolved, Vec<Claimed>)> {
        let mut groups: Vec<(Resolved, Vec<Claimed>)> = Vec::new();
        // By the endpoint itself, not its name: one destination URL may be signed with two
        // tenants' secrets, two endpoints (that share the name, and so the limits).
        let mut positions: HashMap<*const Endpoint, usize> = HashMap::new();
        for (record, body) in claimed {
            let endpoint = self.endpoint_for(&record, index);
            let group = match &endpoint {
                Ok(e) => positions.get(&Arc::as_ptr(e)).copied(),
                Err(_) => None, // each with its own reason
            };
            match group {
                Some(i) => groups[i].1.push((record, body)),
                None => {
                    if let Ok(e) = &endpoint {
                        positions.insert(Arc::as_ptr(e), groups.len());
                    }
                    groups.push((endpoint, vec![(record, body)]));
                }
            }
        }
        groups
    }

    /// Endpoints and destinations whose messages wait, and until when (unix ms): those an
    /// operator (or a 410) disabled, looked at again after a while, and those whose circuit
    /// a replica opened, until it lets a probe through.
    async fn held_endpoints(&self, now_ms: u64) -> HashMap<String, u64> {
        let Ok(states) = self.queue.endpoint_states().await else {
            return HashMap::new();
        };
        states
            .into_iter()
            .filter_map(|(name, state)| {
                let until = match state.paused_until_ms {
                    _ if !state.enabled => now_ms + DISABLED_RECHECK.as_millis() as u64,
                    Some(until) if until > now_ms => until,
                    _ => return None,
                };
                Some((name, until))
            })
            .collect()
    }

    /// The subscriptions the claimed messages go to, with the disabled ones added to
    /// `held`. When the subscriptions cannot be read, their messages wait a second (the
    /// others go on); none when that leaves nothing.
    async fn with_subscriptions(
        &self,
        claimed: Vec<Claimed>,
        held: &mut HashMap<String, u64>,
    ) -> Option<(Arc<Index>, Vec<Claimed>)> {
        if claimed.iter().all(|(r, _)| r.event.is_none()) {
            return Some((Arc::default(), claimed));
        }
        let now = now_ms();
        match self.subscriptions.index().await {
            Ok(index) => {
                for (record, _) in &claimed {
                    let Some(event) = &record.event else { continue };
                    if index
                        .by_id
                        .get(&event.subscription)
                        .is_some_and(|s| !s.enabled)
                    {
                        held.insert(
                            event.subscription.clone(),
                            now + DISABLED_RECHECK.as_millis() as u64,
                        );
                    }
                }
                Some((index, claimed))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the subscriptions; their deliveries wait");
                let (waiting, others): (Vec<_>, Vec<_>) =
                    claimed.into_iter().partition(|(r, _)| r.event.is_some());
                for (record, _) in waiting {
                    let _ = self
                        .queue
                        .postpone(&record.id, now + DISABLED_RECHECK.as_millis() as u64)
                        .await;
                }
                (!others.is_empty()).then(|| (Arc::default(), others))
            }
        }
    }

    /// How long a claim lasts: past every attempt of an endpoint, a destination or a
    /// subscription. Subscriptions' timeouts come from the index as last read (each batch
    /// with their deliveries reads it anew; no store round trip here), or the longest
    /// allowed until it is first read.
    fn lease(&self) -> Duration {
        let subscriptions = self
            .subscriptions
            .cached()
            .map_or(MAX_TIMEOUT, |index| index.longest_timeout);
        self.live.load().longest_timeout.max(subscriptions) + LEASE_MARGIN
    }

    /// How long to sleep until the next message falls due (at most [`IDLE_POLL`]); a
    /// message due now that was not claimed is held back: look again after [`RETRY_READ`].
    async fn until_due(&self) -> Duration {
        match self.queue.next_due().await {
            Ok(Some(due)) => match due.saturating_sub(now_ms()) {
                0 => RETRY_READ,
                ms => Duration::from_millis(ms).min(IDLE_POLL),
            },
            Ok(None) => IDLE_POLL,
            Err(_) => RETRY_READ,
        }
    }

    /// Sets the queue-depth and endpoint-state gauges from the queue's counts.
    async fn refresh_gauges(&self) {
        let (Ok(depths), Ok(states)) =
            (self.queue.depth().await, self.queue.endpoint_states().await)
        else {
            return;
        };
        let now = now_ms();
        let live = self.live.load();
        let mut names: BTreeSet<&str> = live
            .endpoints
            .iter()
            .map(|e| e.config.name.as_str())
            .collect();
        names.extend(live.routes.iter().map(|e| e.config.name.as_str()));
        names.extend(depths.iter().map(|d| d.endpoint.as_str()));
        for name in names {
            let depth = depths.iter().find(|d| d.endpoint == name);
            if let Some(route) = name.strip_prefix("route:") {
                let paused = states.iter().any(|(n, s)| n == name && !s.enabled);
                set_route_gauges(route, depth, paused, now);
                continue;
            }
            let endpoint = EndpointLabels {
                endpoint: name.to_string(),
            };
            let oldest = depth.and_then(|d| d.oldest_waiting_ms);
            let age = oldest.map_or(0, |at| now.saturating_sub(at) / 1000);
            METRICS
                .outbound_oldest_pending
                .get_or_create(&endpoint)
                .set(age as i64);
            for bucket in Bucket::ALL {
                let labels = QueueLabels {
                    endpoint: name.to_string(),
                    state: bucket.as_str(),
                };
                let count = depth.map_or(0, |d| d.count(bucket));
                METRICS
                    .outbound_queue_depth
                    .get_or_create(&labels)
                    .set(count as i64);
            }
        }
        for name in live.endpoints.iter().map(|e| &e.config.name) {
            let enabled = states
                .iter()
                .find(|(n, _)| n == name)
                .is_none_or(|(_, s)| s.enabled);
            METRICS
                .outbound_endpoint_state
                .get_or_create(&EndpointLabels {
                    endpoint: name.clone(),
                })
                .set(i64::from(enabled));
        }
    }

    async fn deliver(
        self: Arc<Self>,
        connector: Arc<Connector>,
        endpoint: Result<Arc<Endpoint>, String>,
        record: Record,
        body: Vec<u8>,
    ) {
        let _under_way = crate::drain::InFlight::begin();
        let (attempt, next, trace) = match endpoint {
            Ok(endpoint) => {
                let timeout = endpoint.config.policy.retry.timeout;
                let outcome = endpoint.attempt(&connector, &record, &body, timeout).await;
                let attempt = record.round_attempts + 1;
                let next = next_step(
                    &endpoint.config.policy.retry,
                    attempt,
                    &outcome,
                    self.time_scale,
                    now_ms(),
                );
                if let Some((reason, until_ms)) = endpoint.record_outcome(&outcome, now_ms()) {
                    pause_endpoint(&self.queue, &endpoint.config.name, &reason, until_ms).await;
                }
                if outcome.gone {
                    // A per-request destination is named by its id; the reason says which
                    // host it is, without the URL's path or query.
                    let reason = match record.target {
                        Some(_) => format!("{} answered 410 Gone", endpoint.config.url.host),
                        None => "the receiver answered 410 Gone".to_string(),
                    };
                    match &record.event {
                        // That subscription only: others to the same URL keep theirs.
                        Some(event) => {
                            let id = &event.subscription;
                            if let Err(e) = self.subscriptions.set_enabled(id, false, &reason).await
                            {
                                tracing::error!(subscription = %id, error = %e.message, "could not disable the subscription");
                            }
                        }
                        None => {
                            let name = &endpoint.config.name;
                            disable_endpoint(&self.queue, name, &reason).await;
                            self.subscriptions
                                .notices()
                                .endpoint_disabled(name, &reason);
                        }
                    }
                }
                (outcome.attempt, next, outcome.trace)
            }
            Err(error) => {
                let attempt = Attempt {
                    at_ms: now_ms(),
                    status: None,
                    error: Some(error),
                    latency_ms: 0,
                    response: String::new(),
                    request_headers: Vec::new(),
                };
                (attempt, Next::Dead, None)
            }
        };
        let fate = match next {
            Next::Delivered => Fate::Delivered,
            Next::RetryAt(_) => Fate::Retried,
            Next::Dead => Fate::Dead,
        };
        if let Some(event) = &record.event {
            let (status, error) = (attempt.status, attempt.error.clone().unwrap_or_default());
            let note = match next {
                Next::Delivered => DeliveryNote::Delivered,
                Next::RetryAt(_) => DeliveryNote::Failed { status, error },
                Next::Dead => DeliveryNote::Dead { status, error },
            };
            self.subscriptions.note(&event.subscription, note).await;
        }
        // After the counts, which the events carry.
        self.subscriptions
            .notices()
            .attempt(&record, &attempt, fate);
        let outcome = record_message_outcome(&record.endpoint, record.created_ms, next);
        let (trace_id, span_id) = log_ids(trace);
        tracing::info!(endpoint = %record.endpoint, delivery_id = %record.id, status = attempt.status, error = attempt.error.as_deref(), outcome, trace_id, span_id, "delivery attempt");
        let delivered = matches!(next, Next::Delivered).then(|| attempt.clone());
        match self.queue.finish_attempt(&record, attempt, next).await {
            Ok(true) => {
                if let Some(attempt) = delivered {
                    let mut record = record;
                    record.attempts.push(attempt);
                    self.history.delivered(record, &body, now_ms());
                }
            }
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

/// A `deliver: queue` route's depth, oldest waiting webhook and pause.
fn set_route_gauges(route: &str, depth: Option<&Depth>, paused: bool, now: u64) {
    let age = depth
        .and_then(|d| d.oldest_waiting_ms)
        .map_or(0, |at| now.saturating_sub(at) / 1000);
    let labels = QueuedRouteLabels {
        route: route.to_string(),
    };
    METRICS
        .inbound_queue_oldest
        .get_or_create(&labels)
        .set(age as i64);
    METRICS
        .inbound_route_paused
        .get_or_create(&labels)
        .set(i64::from(paused));
    for bucket in Bucket::ALL {
        let labels = InboundQueueLabels {
            route: route.to_string(),
            state: bucket.as_str(),
        };
        let count = depth.map_or(0, |d| d.count(bucket));
        METRICS
            .inbound_queue_depth
            .get_or_create(&labels)
            .set(count as i64);
    }
}

/// The worker as a Pingora background service, with its own runtime.
pub struct WorkerService(pub Arc<DeliveryWorker>);

#[async_trait]
impl BackgroundService for WorkerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let worker = self.0.clone();
        let connector = Arc::new(Connector::new(None));
        let permits = Arc::new(Semaphore::new(worker.concurrency));
        // A finished delivery wakes the worker only once this many slots are free: under
        // load, claims come in batches instead of one message per claim.
        let refill_at = (worker.concurrency / 8).max(1);
        let mut last_gauges = std::time::Instant::now() - GAUGES_EVERY;
        let mut queue_down = false;
        let mut sleep = Duration::ZERO;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                // Stopping: what is claimed finishes; nothing more is claimed.
                _ = crate::drain::stopping() => break,
                _ = tokio::time::sleep(sleep) => {}
                _ = worker.wake.notified() => {}
            }
            sleep = IDLE_POLL;
            // From a claim until its deliveries are under way of their own.
            let _claiming = crate::drain::InFlight::begin();
            if last_gauges.elapsed() >= GAUGES_EVERY {
                worker.refresh_gauges().await;
                last_gauges = std::time::Instant::now();
            }
            let free = permits.available_permits();
            if free == 0 {
                continue; // a freed slot wakes the worker
            }
            if worker.subscriptions.cached().is_none() {
                // Until read once, claims last as long as any subscription could need.
                let _ = worker.subscriptions.index().await;
            }
            let lease_ms = worker.lease().as_millis() as u64;
            let claimed = match worker.queue.claim_due(now_ms(), lease_ms, free).await {
                Ok(claimed) => {
                    if std::mem::take(&mut queue_down) {
                        tracing::info!("the outbound queue is readable again");
                    }
                    claimed
                }
                Err(e) => {
                    // Once per outage, not on every attempt.
                    if !std::mem::replace(&mut queue_down, true) {
                        tracing::error!(error = %e, "cannot read the outbound queue; retrying every 50 ms");
                    }
                    sleep = RETRY_READ;
                    continue;
                }
            };
            let more = claimed.len() == free;
            if more {
                // Maybe more is due: look again as soon as slots free up.
                worker.wake.notify_one();
            }
            if claimed.is_empty() {
                sleep = worker.until_due().await;
                continue;
            }
            // Read only when there is work: an idle worker touches nothing but the due index.
            let mut held = worker.held_endpoints(now_ms()).await;
            let Some((index, claimed)) = worker.with_subscriptions(claimed, &mut held).await else {
                sleep = RETRY_READ;
                continue;
            };
            for (endpoint, messages) in worker.by_endpoint(claimed, &index) {
                // Held back messages wait in the queue, unattempted: a disabled endpoint
                // until it is enabled, a busy or paused one until it has room again.
                let (slots, later) = match &endpoint {
                    Ok(e) => match held.get(&e.config.name) {
                        Some(until) => (Vec::new(), *until),
                        None => {
                            let admitted = e.pacing.admit(now_ms(), messages.len()).await;
                            let later = now_ms() + admitted.wait.as_millis() as u64;
                            (admitted.go.into_iter().map(Some).collect(), later)
                        }
                    },
                    // Recorded as a failed attempt.
                    Err(_) => ((0..messages.len()).map(|_| None).collect(), 0),
                };
                let mut messages = messages.into_iter();
                for slot in slots {
                    let Some((record, body)) = messages.next() else {
                        break;
                    };
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let (worker, connector, permits) =
                        (worker.clone(), connector.clone(), permits.clone());
                    let endpoint = endpoint.clone();
                    tokio::spawn(async move {
                        let wake = worker.wake.clone();
                        worker.deliver(connector, endpoint, record, body).await;
                        if let Some(slot) = slot {
                            slot.release().await;
                        }
                        drop(permit);
                        if permits.available_permits() >= refill_at {
                            wake.notify_one();
                        }
                    });
                }
                for (record, _) in messages {
                    let _ = worker.queue.postpone(&record.id, later).await;
                }
            }
            if !more {
                // After the postponements above, which may fall due soonest.
                sleep = worker.until_due().await;
            }
        }
    }
}
