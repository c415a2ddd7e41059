//! Operational events: hookgate's own webhooks about the subscriptions and deliveries it
//! runs, so a vendor hears (and can tell its customer) that an endpoint is failing, gave
//! up or came back. They go through the subscription engine to the subscriptions of the
//! reserved tenant `hookgate`, and to `outbound.operational`'s endpoint if there is one:
//! stored, signed and retried like any delivery. Nothing about those deliveries raises
//! another event.
//!
//! The worker and the subscription API only note what happened ([`Notices`], never
//! waiting); the [`Publisher`] in the background builds each event, with the subscription
//! as the API shows it (no secret, its URL without the query) and its counts, and stores
//! its deliveries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify};

use super::live::LiveOutbound;
use super::subscriptions::Subscriptions;
use crate::clock::now_ms;
use crate::config::operational::{OPERATIONAL_ENDPOINT, OPERATIONAL_TENANT};
use crate::config::values::display_url;
use crate::config::{OperationalConfig, SUBSCRIPTIONS_ENDPOINT};
use crate::ids::{new_delivery_id, random_hex};
use crate::metrics::METRICS;
use crate::store::queue::{Attempt, EventRef, Queue, Record};

/// Events waiting for the publisher; beyond this they are dropped and counted.
const BACKLOG: usize = 10_000;

/// One event before the publisher completes it.
#[derive(Debug)]
pub struct Notice {
    pub event_type: &'static str,
    pub tenant: Option<String>,
    /// The subscription's id, or for an endpoint's deliveries none.
    pub subscription: Option<String>,
    pub endpoint: Option<String>,
    pub data: Map<String, Value>,
}

/// A delivery's fate after an attempt, as the worker decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    Retried,
    Dead,
}

/// Failed attempts in a row, and when `delivery.failing` was last sent.
#[derive(Default)]
struct Streak {
    failures: u32,
    notified_ms: Option<u64>,
}

/// Where the worker and the API note what happened. Cheap to clone.
#[derive(Clone)]
pub struct Notices {
    sender: mpsc::Sender<Notice>,
    settings: OperationalConfig,
    streaks: Arc<Mutex<HashMap<String, Streak>>>,
}

/// The notices and the receiving end the [`Publisher`] empties.
pub fn channel(settings: OperationalConfig) -> (Notices, mpsc::Receiver<Notice>) {
    let (sender, receiver) = mpsc::channel(BACKLOG);
    let notices = Notices {
        sender,
        settings,
        streaks: Arc::default(),
    };
    (notices, receiver)
}

fn count(event_type: &'static str, outcome: &'static str) {
    METRICS.record_operational(event_type, outcome);
}

impl Notices {
    /// Notes an event; never waits (a full backlog drops it, counted and logged).
    pub fn send(&self, notice: Notice) {
        if notice.tenant.as_deref() == Some(OPERATIONAL_TENANT) {
            return; // about the operational subscriptions themselves: nothing to say
        }
        let event_type = notice.event_type;
        if self.sender.try_send(notice).is_err() {
            count(event_type, "dropped");
            tracing::warn!(event_type, "operational event dropped: the backlog is full");
        }
    }

    /// A subscription changed: `subscription.created`, `.updated`, `.deleted`, `.enabled`
    /// or `.disabled` (with why).
    pub fn subscription(
        &self,
        event_type: &'static str,
        id: &str,
        tenant: Option<&str>,
        reason: Option<&str>,
    ) {
        let mut data = Map::new();
        if let Some(reason) = reason {
            data.insert("reason".into(), json!(reason));
        }
        self.send(Notice {
            event_type,
            tenant: tenant.map(str::to_string),
            subscription: Some(id.to_string()),
            endpoint: None,
            data,
        });
    }

    /// A configured endpoint was disabled (its receiver's 410, or an operator).
    pub fn endpoint_disabled(&self, endpoint: &str, reason: &str) {
        self.send(Notice {
            event_type: "endpoint.disabled",
            tenant: None,
            subscription: None,
            endpoint: Some(endpoint.to_string()),
            data: Map::from_iter([("reason".to_string(), json!(reason))]),
        });
    }

    /// A delivery's attempt: `delivery.failing` after `failing_after` failures in a row (at
    /// most once per `failing_window`), `delivery.recovered` at the next success after
    /// that, and `delivery.exhausted` when it goes dead.
    pub fn attempt(&self, record: &Record, attempt: &Attempt, fate: Fate) {
        if record.endpoint == OPERATIONAL_ENDPOINT || record.target.is_some() {
            return; // its own deliveries, and per-request destinations (no lasting name)
        }
        // Borrowed: every delivery comes through here, and most send nothing.
        let subscription = record.event.as_ref().map(|e| e.subscription.as_str());
        let key = subscription.unwrap_or(record.endpoint.as_str());
        let now = now_ms();
        let mut sends = Vec::new();
        {
            let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
            if fate == Fate::Delivered {
                if let Some(streak) = streaks.remove(key).filter(|s| s.notified_ms.is_some()) {
                    sends.push(("delivery.recovered", streak.failures));
                }
            } else {
                let streak = streaks.entry(key.to_string()).or_default();
                streak.failures += 1;
                let window = self.settings.failing_window.as_millis() as u64;
                if streak.failures >= self.settings.failing_after
                    && streak
                        .notified_ms
                        .is_none_or(|at| now.saturating_sub(at) >= window)
                {
                    streak.notified_ms = Some(now);
                    sends.push(("delivery.failing", streak.failures));
                }
                if fate == Fate::Dead {
                    sends.push(("delivery.exhausted", streak.failures));
                }
            }
        }
        let tenant = record.event.as_ref().and_then(|e| e.tenant.as_deref());
        for (event_type, failures) in sends {
            let mut data = Map::new();
            data.insert("delivery".into(), delivery(record));
            data.insert("last_attempt".into(), last_attempt(attempt));
            data.insert("consecutive_failures".into(), json!(failures));
            self.send(Notice {
                event_type,
                tenant: tenant.map(str::to_string),
                subscription: subscription.map(str::to_string),
                endpoint: subscription.is_none().then(|| record.endpoint.clone()),
                data,
            });
        }
    }
}

fn delivery(record: &Record) -> Value {
    let mut delivery = json!({ "id": record.id, "attempts": record.attempts.len() + 1, "created_ms": record.created_ms });
    if let Some(event) = &record.event {
        delivery["event_id"] = json!(event.event_id);
        delivery["event_type"] = json!(event.event_type);
    }
    delivery
}

/// The attempt without the request's headers: its status or error, and the answer's start.
fn last_attempt(attempt: &Attempt) -> Value {
    json!({
        "at_ms": attempt.at_ms,
        "status": attempt.status,
        "error": attempt.error,
        "latency_ms": attempt.latency_ms,
        "response": attempt.response,
    })
}

/// Builds and stores the events noted, in the background.
pub struct Publisher {
    pub notices: Mutex<Option<mpsc::Receiver<Notice>>>,
    pub subscriptions: Arc<Subscriptions>,
    pub queue: Arc<dyn Queue>,
    pub live: LiveOutbound,
    pub wake: Arc<Notify>,
}

impl Publisher {
    async fn publish(&self, notice: Notice) {
        let event_type = notice.event_type;
        let mut data = notice.data;
        data.insert("tenant".into(), json!(notice.tenant));
        if let Some(id) = &notice.subscription {
            let shown = match self.subscriptions.get(id).await {
                Ok(s) => {
                    json!({ "id": s.id, "url": display_url(&s.url), "description": s.description, "event_types": s.event_types, "enabled": s.enabled, "disabled_reason": s.disabled_reason })
                }
                Err(_) => json!({ "id": id }), // deleted
            };
            data.insert("subscription".into(), shown);
            let counts = self.subscriptions.stats(id).await.unwrap_or(Value::Null);
            data.insert("counts".into(), counts);
        }
        if let Some(endpoint) = &notice.endpoint {
            data.insert("endpoint".into(), json!(endpoint));
        }
        let timestamp = chrono::DateTime::from_timestamp_millis(now_ms() as i64)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let payload = json!({ "type": event_type, "timestamp": timestamp, "data": data });
        let body = serde_json::to_vec(&payload).expect("JSON values always serialize");
        let event_id = format!("evt_{}", random_hex(12));
        let record = |endpoint: &str, event: Option<EventRef>| Record {
            event,
            ..Record::json(new_delivery_id(), endpoint, now_ms())
        };
        let mut records = Vec::new();
        match self.subscriptions.index().await {
            Ok(index) => {
                let to = index.matching(Some(OPERATIONAL_TENANT), event_type, &BTreeMap::new());
                records.extend(to.iter().map(|s| {
                    let event = EventRef {
                        event_id: event_id.clone(),
                        subscription: s.id.clone(),
                        tenant: Some(OPERATIONAL_TENANT.into()),
                        event_type: event_type.into(),
                    };
                    record(SUBSCRIPTIONS_ENDPOINT, Some(event))
                }));
            }
            Err(e) => {
                tracing::warn!(error = %e, event_type, "operational event: the subscriptions cannot be read")
            }
        }
        let live = self.live.load();
        if live
            .endpoints
            .iter()
            .any(|e| e.config.name == OPERATIONAL_ENDPOINT)
        {
            records.push(record(OPERATIONAL_ENDPOINT, None));
        }
        drop(live);
        if records.is_empty() {
            count(event_type, "unsubscribed");
            return;
        }
        match self.queue.enqueue_many(records, body.into(), None).await {
            Ok(_) => {
                count(event_type, "published");
                self.wake.notify_one();
            }
            Err(e) => {
                count(event_type, "failed");
                tracing::error!(error = %e, event_type, "operational event not stored");
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Publisher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut notices) = self
            .notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Some(notice) => self.publish(notice).await,
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
