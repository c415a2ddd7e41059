//! The durable outbound queue. A message is written (and fsync'd) before the app gets its
//! 202, and removed only after a successful or final attempt, so a crash loses nothing:
//! what was in flight is attempted again once its lease lapses (at-least-once, with the
//! same delivery id so receivers can dedupe).

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::seal::{ResealPage, Sealer};
use super::StoreError;

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    New,
    /// The idempotency key was seen within its window: this is the earlier receipt (for a
    /// single message, its id).
    Duplicate(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its due time, or being attempted.
    Pending,
    /// Out of attempts (or refused with 410): kept for inspection and replay.
    Dead,
}

/// One delivery attempt, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The start of the receiver's answer, for diagnosis.
    pub response: String,
    /// The request's headers as sent, with signature and credential values masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<(String, String)>,
}

impl Attempt {
    /// Seals (or opens) the answer, bound to its message and attempt.
    pub fn seal_answer(
        &mut self,
        id: &str,
        change: &impl Fn(&'static str, &str, &str) -> Result<String, StoreError>,
    ) -> Result<(), StoreError> {
        if !self.response.is_empty() {
            let place = format!("{id}@{}", self.at_ms);
            self.response = change("queue.answer", &place, &self.response)?;
        }
        Ok(())
    }
}

/// A message's body as the store keeps it: sealed with `store.encryption`, bound to it.
pub fn seal_body(sealer: &Sealer, id: &str, body: &[u8]) -> Vec<u8> {
    sealer.seal("queue.body", id, body)
}

/// What [`seal_body`] sealed, or a body written before the store had keys.
pub fn open_body(sealer: &Sealer, id: &str, stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    sealer
        .open("queue.body", id, stored)
        .map(|body| body.into_owned())
        .map_err(|e| StoreError::Sealed(format!("the body of {id}: {e}")))
}

/// A stored body sealed otherwise than `sealer` seals now, sealed anew; `None` if it is
/// current.
pub fn reseal_body(
    sealer: &Sealer,
    id: &str,
    stored: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    if sealer.is_current(stored) {
        return Ok(None);
    }
    Ok(Some(seal_body(sealer, id, &open_body(sealer, id, stored)?)))
}

/// A request header holding a credential or a signature.
fn is_credential(name: &str) -> bool {
    matches!(name, "authorization" | "proxy-authorization" | "cookie")
        || ["signature", "token", "secret"]
            .iter()
            .any(|part| name.contains(part))
}

/// An idempotency key (`Idempotency-Key` on an enqueue or a publish), held until
/// `expires_ms` (unix ms), and what a repeat within that window gets back instead of
/// storing anything: the earlier message's id, or the earlier event's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub expires_ms: u64,
    pub receipt: String,
}

/// The event a message delivers to one subscription (`POST /events` fans an event out to
/// every matching subscription: one message each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    /// Shared by every delivery of one publish.
    pub event_id: String,
    pub subscription: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub event_type: String,
}

/// A per-request destination (multi-tenant senders), instead of a configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub url: String,
    pub scheme: String,
    /// `Hookgate-Secret`: kept in the queue file so retries can sign.
    pub secret: Option<String>,
    /// `Hookgate-Secret-Ref`: the name of a secret in `outbound.secrets`.
    pub secret_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub endpoint: String,
    /// Signed timestamp, fixed at accept time and reused on every attempt.
    pub timestamp: u64,
    pub content_type: Option<String>,
    pub created_ms: u64,
    pub state: State,
    pub due_ms: u64,
    /// Attempts since the message was accepted or last replayed.
    pub round_attempts: u32,
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// For a subscription's delivery: which event, to which subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventRef>,
    /// The W3C `traceparent` of the span that accepted the message: its attempts are
    /// spans in that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// A verified webhook a `deliver: queue` route stored, to pass on to the app as it
    /// came (its `endpoint` is the route's queue name, `route:NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<InboundRequest>,
    /// Its place in a line of messages delivered one at a time, in order (`order` on a
    /// `deliver: queue` route): only the first of a line is ever due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// The `Idempotency-Key` the app sent with it, as sent: the delivery history finds
    /// messages by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A message's line: its key, and where in the line it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// `route:NAME` and the key's value: one line per route and value.
    pub key: String,
    /// Later messages have larger ones ([`next_order_seq`]); a replay takes a new one, and
    /// so the end of the line. (The Redis queue keeps each line as a list, in the order
    /// the messages were stored.)
    pub seq: u64,
}

/// A number larger than any this process handed out before, and than the clock's
/// microseconds: a message's place in its line.
pub fn next_order_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// What a `deliver: queue` route keeps of a request besides its body: enough to send the
/// app the same request, with hookgate's headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRequest {
    pub route: String,
    pub method: String,
    /// Path and query, as they came.
    pub target: String,
    /// The headers as the app gets them in proxy mode: hop-by-hop fields removed,
    /// `X-Forwarded-*`, `Hookgate-Route` and `Hookgate-Verified` added, credentials stripped.
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// A JSON message for `endpoint` accepted at `now_ms`, due then, not attempted yet, and
    /// with nothing else set.
    pub fn json(id: String, endpoint: &str, now_ms: u64) -> Self {
        Record {
            id,
            endpoint: endpoint.to_string(),
            timestamp: now_ms / 1000,
            content_type: Some("application/json".into()),
            created_ms: now_ms,
            state: State::Pending,
            due_ms: now_ms,
            round_attempts: 0,
            attempts: Vec::new(),
            target: None,
            event: None,
            trace: None,
            inbound: None,
            order: None,
            idempotency_key: None,
        }
    }

    /// The record as the admin API shows it: an inline `Hookgate-Secret` is replaced.
    pub fn redacted(mut self) -> Self {
        if let Some(secret) = self.target.as_mut().and_then(|t| t.secret.as_mut()) {
            *secret = "[redacted]".to_string();
        }
        // A stored webhook's credentials and signatures (kept for the app) are not shown.
        for (name, value) in self.inbound.iter_mut().flat_map(|i| i.headers.iter_mut()) {
            if is_credential(name) {
                *value = "[masked]".to_string();
            }
        }
        self
    }

    /// The record as the store keeps it (`store.encryption`): an inline `Hookgate-Secret`,
    /// a stored webhook's credentials and signatures, and every answer sealed, each bound
    /// to this message (and an answer to its attempt). Its body is sealed on its own
    /// ([`seal_body`]); the rest stays readable, for the store's own scripts and indexes.
    pub fn sealed(&self, sealer: &Sealer) -> Record {
        let mut record = self.clone();
        record
            .seal_fields(|table, id, value| Ok(sealer.seal_text(table, id, value)))
            .expect("sealing cannot fail");
        record
    }

    /// What [`Record::sealed`] sealed, opened.
    pub fn opened(mut self, sealer: &Sealer) -> Result<Record, StoreError> {
        self.seal_fields(|table, id, value| {
            sealer
                .open_text(table, id, value)
                .map_err(|e| StoreError::Sealed(format!("{table} of {id}: {e}")))
        })?;
        Ok(self)
    }

    /// Whether every sealed field is sealed as `sealer` seals now (a rotation rewrites the
    /// others).
    pub fn is_sealed_as(&self, sealer: &Sealer) -> bool {
        let stale = || StoreError::Sealed(String::new());
        self.clone()
            .seal_fields(|_, _, value| {
                if sealer.is_current_text(value) {
                    Ok(String::new())
                } else {
                    Err(stale())
                }
            })
            .is_ok()
    }

    /// Replaces each sealed field with `change(table, place, value)`.
    fn seal_fields(
        &mut self,
        change: impl Fn(&'static str, &str, &str) -> Result<String, StoreError>,
    ) -> Result<(), StoreError> {
        let id = self.id.clone();
        if let Some(secret) = self.target.as_mut().and_then(|t| t.secret.as_mut()) {
            *secret = change("queue.secret", &id, secret)?;
        }
        for (name, value) in self.inbound.iter_mut().flat_map(|i| i.headers.iter_mut()) {
            if is_credential(name) {
                *value = change("queue.header", &format!("{id}/{name}"), value)?;
            }
        }
        for attempt in &mut self.attempts {
            attempt.seal_answer(&id, &change)?;
        }
        Ok(())
    }

    /// Which count of its endpoint's depth the message is in.
    pub fn bucket(&self) -> Bucket {
        match self.state {
            State::Dead => Bucket::Dead,
            State::Pending if self.round_attempts == 0 => Bucket::Pending,
            State::Pending => Bucket::Scheduled,
        }
    }
}

/// Which stored deliveries an operator means: the same filters for listing, purging and
/// replaying, so an action touches exactly the rows the list showed. Every field that is
/// set must match; a filter with none set matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub subscription: Option<String>,
    pub tenant: Option<String>,
    pub event_type: Option<String>,
    /// Accepted at or after (unix ms).
    pub since_ms: Option<u64>,
    /// Accepted at or before (unix ms).
    pub until_ms: Option<u64>,
    /// In this bucket: pending (not attempted in this round), scheduled (waiting for a
    /// retry) or dead. The one set of state names the API, the CLI, the console and the
    /// depth metrics share, with `delivered` for those that left the queue.
    pub bucket: Option<Bucket>,
}

impl DeliveryFilter {
    /// No field is set.
    pub fn is_empty(&self) -> bool {
        *self == DeliveryFilter::default()
    }

    pub fn matches(&self, record: &Record) -> bool {
        let of_event =
            self.subscription.is_some() || self.tenant.is_some() || self.event_type.is_some();
        self.endpoint.as_ref().is_none_or(|e| &record.endpoint == e)
            && self.bucket.is_none_or(|b| record.bucket() == b)
            && self.since_ms.is_none_or(|t| record.created_ms >= t)
            && self.until_ms.is_none_or(|t| record.created_ms <= t)
            && (!of_event
                || record.event.as_ref().is_some_and(|e| {
                    self.subscription
                        .as_ref()
                        .is_none_or(|s| &e.subscription == s)
                        && self
                            .tenant
                            .as_ref()
                            .is_none_or(|t| e.tenant.as_ref() == Some(t))
                        && self.event_type.as_ref().is_none_or(|t| &e.event_type == t)
                }))
    }
}

/// The queue's depth is counted in three buckets per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Not attempted yet in this round (new, replayed, or being attempted a first time).
    Pending,
    /// Waiting for a retry after a failed attempt.
    Scheduled,
    Dead,
}

impl Bucket {
    pub const ALL: [Bucket; 3] = [Bucket::Pending, Bucket::Scheduled, Bucket::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Pending => "pending",
            Bucket::Scheduled => "scheduled",
            Bucket::Dead => "dead",
        }
    }

    pub fn parse(name: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.as_str() == name)
    }
}

/// One endpoint's messages by bucket, kept by the queue as messages move (never counted
/// by a scan), and when its oldest undelivered message was accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Depth {
    pub endpoint: String,
    pub pending: u64,
    pub scheduled: u64,
    pub dead: u64,
    /// Accept time (unix ms) of the oldest message not yet delivered or dead.
    pub oldest_waiting_ms: Option<u64>,
}

impl Depth {
    pub fn count(&self, bucket: Bucket) -> u64 {
        match bucket {
            Bucket::Pending => self.pending,
            Bucket::Scheduled => self.scheduled,
            Bucket::Dead => self.dead,
        }
    }

    pub fn count_mut(&mut self, bucket: Bucket) -> &mut u64 {
        match bucket {
            Bucket::Pending => &mut self.pending,
            Bucket::Scheduled => &mut self.scheduled,
            Bucket::Dead => &mut self.dead,
        }
    }
}

/// Whether an endpoint is being delivered to, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub enabled: bool,
    pub reason: String,
    pub since_ms: u64,
    /// A replica's circuit breaker opened: every replica holds the endpoint's messages
    /// back until then (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until_ms: Option<u64>,
}

/// What becomes of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(u64),
    Dead,
}

/// The queue operations the outbound side needs, over the embedded store (one process)
/// or Redis (shared by replicas).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Stores new messages with one body, all or none in one durable commit (an event's
    /// deliveries: a crash never leaves half of them), unless `idempotency` names a key
    /// held within its window. The messages of one call share their queue partition: a
    /// per-request destination's URL, or an event's tenant. No message, nothing is held.
    async fn enqueue_many(
        &self,
        records: Vec<Record>,
        body: Bytes,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError>;
    /// Stores one new message durably, unless `idempotency` (key, expiry in unix ms) names
    /// one accepted within its window.
    async fn enqueue(
        &self,
        record: Record,
        body: Bytes,
        idempotency: Option<(String, u64)>,
    ) -> Result<Enqueued, StoreError> {
        let idempotency = idempotency.map(|(key, expires_ms)| Idempotency {
            key,
            expires_ms,
            receipt: record.id.clone(),
        });
        self.enqueue_many(vec![record], body, idempotency).await
    }
    /// Takes up to `limit` due messages (of enabled endpoints, where the backend can tell
    /// them apart without reading the messages) and pushes each one's due time `lease_ms` ahead,
    /// so a crashed worker's messages come back on their own. The claimed record's
    /// `due_ms` is the lease's end: it identifies this claim.
    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Vec<u8>)>, StoreError>;
    /// Records an attempt on a claimed message and what follows it. Ignored (false) when
    /// the claim is no longer current: its lease lapsed and another worker took it over,
    /// or an operator retried the message meanwhile.
    async fn finish_attempt(
        &self,
        claimed: &Record,
        attempt: Attempt,
        next: Next,
    ) -> Result<bool, StoreError>;
    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError>;
    /// A stored message's body, for the admin API; `None` once it left the queue.
    async fn body(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn list(
        &self,
        endpoint: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Record>, StoreError>;
    /// Makes a dead (or pending) message due now with a fresh round of attempts.
    async fn retry_now(&self, id: &str, now_ms: u64) -> Result<bool, StoreError>;
    /// Makes every dead message that `filter` matches due now.
    async fn replay_dead(&self, filter: &DeliveryFilter, now_ms: u64) -> Result<usize, StoreError> {
        let dead = self
            .list(filter.endpoint.as_deref(), Some(State::Dead))
            .await?;
        let mut replayed = 0;
        for record in dead.iter().filter(|r| filter.matches(r)) {
            replayed += usize::from(self.retry_now(&record.id, now_ms).await?);
        }
        Ok(replayed)
    }
    /// Deletes the messages in `state` that `filter` matches.
    async fn purge(&self, filter: &DeliveryFilter, state: State) -> Result<usize, StoreError>;
    /// Moves a claimed message's due time without counting an attempt (held back).
    async fn postpone(&self, id: &str, due_ms: u64) -> Result<(), StoreError>;
    /// When the next pending message falls due (unix ms), from the due index: the worker
    /// sleeps until then, or until a new message or a free slot wakes it.
    async fn next_due(&self) -> Result<Option<u64>, StoreError>;
    /// Every endpoint's depth, from counts the queue keeps (no scan of the messages).
    async fn depth(&self) -> Result<Vec<Depth>, StoreError>;
    /// Rewrites the messages (records and bodies) sealed otherwise than the store seals
    /// now, a page of at most `limit` from `after` (the previous page's `next`).
    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError>;
    async fn endpoint_states(&self) -> Result<Vec<(String, EndpointState)>, StoreError>;
    async fn set_endpoint_state(
        &self,
        endpoint: &str,
        state: &EndpointState,
    ) -> Result<(), StoreError>;
}
