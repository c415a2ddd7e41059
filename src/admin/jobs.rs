//! Bulk replays as jobs: `POST /admin/deliveries/replay` (and the portal's) starts one and
//! answers at once if it finished within a moment, or with the job to follow at
//! `GET /admin/jobs/{id}`, which shows its progress and can be cancelled. Dead and waiting
//! deliveries are made due again in the queue; delivered ones are sent again from the
//! delivery history, with the same delivery ids (receivers dedupe) unless `new_ids`.
//! Jobs live in the process that runs them; the last [`KEPT`] are shown.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::error_response::ErrorResponse;
use crate::ids::{new_delivery_id, random_hex};
use crate::store::history::HistoryQuery;
use crate::store::queue::{Bucket, DeliveryFilter, Queue, Record, State};
use crate::store::{HistoryStore, StoreError};

/// Jobs shown, newest first; older ones are forgotten.
const KEPT: usize = 100;
/// How long a start waits for its job, to answer a small replay at once.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Delivered messages read from the history per round.
const PAGE: usize = 500;

/// What a replay sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Waiting or dead, in the queue.
    Stored(Bucket),
    /// From the delivery history.
    Delivered,
}

impl Replayed {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "delivered" => Some(Replayed::Delivered),
            name => Bucket::parse(name).map(Replayed::Stored),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReplaySpec {
    pub filter: DeliveryFilter,
    pub states: Vec<Replayed>,
    /// Delivered ones get fresh delivery ids.
    pub new_ids: bool,
}

pub struct Job {
    pub id: String,
    spec: ReplaySpec,
    started_ms: u64,
    replayed: AtomicU64,
    /// Delivered ones whose payload the history no longer keeps.
    skipped: AtomicU64,
    cancel: AtomicBool,
    /// `running`, then `done`, `cancelled` or `failed` (with why).
    state: Mutex<(&'static str, Option<String>, u64)>,
    finished: watch::Sender<bool>,
}

impl Job {
    /// The tenant its filter names: a tenant's token sees its own jobs only.
    pub fn tenant(&self) -> Option<&str> {
        self.spec.filter.tenant.as_deref()
    }

    pub fn view(&self) -> Value {
        let (state, error, finished_ms) =
            self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let f = &self.spec.filter;
        let states: Vec<&str> = self
            .spec
            .states
            .iter()
            .map(|s| match s {
                Replayed::Stored(bucket) => bucket.as_str(),
                Replayed::Delivered => "delivered",
            })
            .collect();
        json!({
            "id": self.id,
            "kind": "replay",
            "state": state,
            "error": error,
            "filter": { "endpoint": f.endpoint, "subscription": f.subscription, "tenant": f.tenant, "event_type": f.event_type, "since": f.since_ms, "until": f.until_ms },
            "states": states,
            "new_ids": self.spec.new_ids,
            "replayed": self.replayed.load(Ordering::Acquire),
            "skipped": self.skipped.load(Ordering::Acquire),
            "started_ms": self.started_ms,
            "finished_ms": (finished_ms > 0).then_some(finished_ms),
        })
    }

    fn finish(&self, state: &'static str, error: Option<String>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (state, error, now_ms());
        self.finished.send_replace(true);
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

pub struct Jobs {
    queue: Arc<dyn Queue>,
    history: Arc<dyn HistoryStore>,
    jobs: Mutex<VecDeque<Arc<Job>>>,
}

impl Jobs {
    pub fn new(queue: Arc<dyn Queue>, history: Arc<dyn HistoryStore>) -> Self {
        Jobs {
            queue,
            history,
            jobs: Mutex::default(),
        }
    }

    /// Starts a replay; the job, once it finished or after a moment.
    pub async fn start(&self, spec: ReplaySpec) -> Arc<Job> {
        let (finished, mut done) = watch::channel(false);
        let job = Arc::new(Job {
            id: format!("job_{}", random_hex(12)),
            spec,
            started_ms: now_ms(),
            replayed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            state: Mutex::new(("running", None, 0)),
            finished,
        });
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.push_front(job.clone());
            jobs.truncate(KEPT);
        }
        let runner = Runner {
            queue: self.queue.clone(),
            history: self.history.clone(),
            job: job.clone(),
        };
        tokio::spawn(async move {
            let outcome = runner.run().await;
            let job = &runner.job;
            match outcome {
                Ok(()) if job.cancelled() => job.finish("cancelled", None),
                Ok(()) => job.finish("done", None),
                Err(e) => job.finish("failed", Some(e.to_string())),
            }
            tracing::info!(job = %job.id, replayed = job.replayed.load(Ordering::Acquire), "replay job ended");
        });
        let _ = tokio::time::timeout(ANSWER_WITHIN, done.wait_for(|d| *d)).await;
        job
    }

    /// `GET /admin/jobs/{id}` (or with `cancel`, its cancel): the job, of `tenant` if one
    /// is given (another tenant's is not found either).
    pub fn call(
        &self,
        id: &str,
        tenant: Option<&str>,
        cancel: bool,
    ) -> Result<(u16, Value), ErrorResponse> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = jobs
            .iter()
            .find(|j| j.id == id && tenant.is_none_or(|t| j.tenant() == Some(t)))
            .ok_or_else(|| ErrorResponse::new(404, "job_not_found", format!("no job {id:?}")))?;
        if cancel {
            job.cancel();
        }
        Ok((200, job.view()))
    }

    /// Newest first; with `tenant`, that tenant's only.
    pub fn list(&self, tenant: Option<&str>) -> Vec<Value> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter()
            .filter(|j| tenant.is_none_or(|t| j.tenant() == Some(t)))
            .map(|j| j.view())
            .collect()
    }
}

struct Runner {
    queue: Arc<dyn Queue>,
    history: Arc<dyn HistoryStore>,
    job: Arc<Job>,
}

impl Runner {
    async fn run(&self) -> Result<(), StoreError> {
        for state in self.job.spec.states.clone() {
            if self.job.cancelled() {
                return Ok(());
            }
            let filter = &self.job.spec.filter;
            let count = match state {
                Replayed::Stored(Bucket::Dead) => {
                    let filter = DeliveryFilter {
                        bucket: Some(Bucket::Dead),
                        ..filter.clone()
                    };
                    self.queue.replay_dead(&filter, now_ms()).await?
                }
                Replayed::Stored(bucket) => self.due_now(bucket).await?,
                Replayed::Delivered => {
                    self.delivered().await?;
                    continue;
                }
            };
            self.job.replayed.fetch_add(count as u64, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Makes the waiting deliveries the filter names due now, with a fresh round of attempts.
    async fn due_now(&self, bucket: Bucket) -> Result<usize, StoreError> {
        let filter = DeliveryFilter {
            bucket: Some(bucket),
            ..self.job.spec.filter.clone()
        };
        let waiting = self
            .queue
            .list(filter.endpoint.as_deref(), Some(State::Pending))
            .await?;
        let mut made_due = 0;
        for record in waiting.iter().filter(|r| filter.matches(r)) {
            if self.job.cancelled() {
                break;
            }
            made_due += usize::from(self.queue.retry_now(&record.id, now_ms()).await?);
        }
        Ok(made_due)
    }

    /// Sends the delivered messages the filter names again, a page of the history at a time.
    async fn delivered(&self) -> Result<(), StoreError> {
        // Newest first, each page older than the last: what this job sends again is
        // delivered anew meanwhile, newer than every page still to come.
        let mut query = HistoryQuery {
            filter: self.job.spec.filter.clone(),
            limit: PAGE,
            ..HistoryQuery::default()
        };
        loop {
            let page = self.history.list(&query).await?;
            for row in &page {
                if self.job.cancelled() {
                    return Ok(());
                }
                let Some((row, Some(payload))) = self.history.get(&row.record.id).await? else {
                    self.job.skipped.fetch_add(1, Ordering::AcqRel);
                    continue;
                };
                let now = now_ms();
                let id = match self.job.spec.new_ids {
                    true => new_delivery_id(),
                    false => row.record.id.clone(),
                };
                let record = Record {
                    id,
                    state: State::Pending,
                    due_ms: now,
                    round_attempts: 0,
                    idempotency_key: None,
                    ..row.record
                };
                self.queue
                    .enqueue_many(vec![record], payload.into(), None)
                    .await?;
                self.job.replayed.fetch_add(1, Ordering::AcqRel);
            }
            match page.last() {
                Some(last) if page.len() == PAGE => query.after = Some(last.cursor()),
                _ => return Ok(()),
            }
        }
    }
}
