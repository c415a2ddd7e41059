//! Sealing everything the store keeps as `store.encryption` says now, in the background
//! while traffic flows: subscriptions, then the queue (records and bodies) and the delivery
//! history (rows and payloads), a page at a time. Values written in clear before the store
//! had keys, or sealed with a key that is no longer the first, are sealed anew.
//!
//! A pass runs by itself at start when the store's `sealed_with` mark does not name the key
//! that seals now (the first start with keys, or with a new first key), and on demand
//! (`hookgate store rotate-key`, `POST /admin/store/rotate-key`). Only a pass asked for
//! moves the key check to the new key once every value is sealed with it: on Redis another
//! replica may still run with the old list, so the operator says when. After that, the
//! older keys can leave `store.encryption.keys`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::seal::{current_key_check, ResealPage};
use super::{HistoryStore, Mark, Queue, Store, StoreError, SubscriptionStore};
use crate::clock::now_ms;
use crate::metrics::METRICS;

/// Records per page: each page is one short transaction (embedded) or a few round trips
/// (Redis), so traffic is never held for long.
const PAGE: usize = 500;

/// What a pass sealed so far, and how it ended.
pub struct Pass {
    /// Asked for (`rotate-key`): the key check moves once every value is sealed anew.
    rotate: AtomicBool,
    /// Set before the pass decides whether to move the key check: a rotation asked for
    /// after it gets a pass of its own.
    closing: AtomicBool,
    key_check_moved: AtomicBool,
    key: String,
    started_ms: u64,
    subscriptions: AtomicU64,
    queue: Progress,
    history: Progress,
    /// Values that do not open (counted in `hookgate_store_decrypt_errors_total`, logged).
    unreadable: AtomicU64,
    /// `running`, then `done` or `failed` (with why), and when it ended.
    state: Mutex<(&'static str, Option<String>, u64)>,
}

#[derive(Default)]
struct Progress {
    scanned: AtomicU64,
    resealed: AtomicU64,
}

impl Progress {
    fn add(&self, page: &ResealPage) {
        self.scanned.fetch_add(page.scanned, Ordering::Relaxed);
        self.resealed.fetch_add(page.resealed, Ordering::Relaxed);
    }

    fn view(&self) -> Value {
        json!({
            "scanned": self.scanned.load(Ordering::Relaxed),
            "resealed": self.resealed.load(Ordering::Relaxed),
        })
    }
}

impl Pass {
    fn new(key: String, rotate: bool) -> Self {
        Pass {
            rotate: AtomicBool::new(rotate),
            closing: AtomicBool::new(false),
            key_check_moved: AtomicBool::new(false),
            key,
            started_ms: now_ms(),
            subscriptions: AtomicU64::new(0),
            queue: Progress::default(),
            history: Progress::default(),
            unreadable: AtomicU64::new(0),
            state: Mutex::new(("running", None, 0)),
        }
    }

    pub fn view(&self) -> Value {
        let (state, error, finished_ms) =
            self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rotate = self.rotate.load(Ordering::SeqCst);
        json!({
            "state": state,
            "error": error,
            "kind": if rotate { "rotate-key" } else { "seal" },
            "key": self.key,
            "subscriptions": { "resealed": self.subscriptions.load(Ordering::Relaxed) },
            "queue": self.queue.view(),
            "history": self.history.view(),
            "unreadable": self.unreadable.load(Ordering::Relaxed),
            "key_check_moved": self.key_check_moved.load(Ordering::SeqCst),
            "started_ms": self.started_ms,
            "finished_ms": (finished_ms > 0).then_some(finished_ms),
        })
    }

    pub fn running(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 == "running"
    }

    fn finish(&self, result: &Result<(), String>) {
        let (state, error) = match result {
            Ok(()) => ("done", None),
            Err(e) => ("failed", Some(e.clone())),
        };
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (state, error, now_ms());
    }
}

/// Why a pass cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResealError {
    #[error("store.encryption gives no keys: there is nothing to seal with")]
    NoKeys,
}

/// The store's parts a pass rewrites (those this process opened), and the last pass.
pub struct Resealer {
    store: Store,
    subscriptions: Option<Arc<dyn SubscriptionStore>>,
    queue: Option<Arc<dyn Queue>>,
    history: Option<Arc<dyn HistoryStore>>,
    last: Mutex<Option<Arc<Pass>>>,
}

impl Resealer {
    pub fn new(
        store: Store,
        subscriptions: Option<Arc<dyn SubscriptionStore>>,
        queue: Option<Arc<dyn Queue>>,
        history: Option<Arc<dyn HistoryStore>>,
    ) -> Self {
        Resealer {
            store,
            subscriptions,
            queue,
            history,
            last: Mutex::default(),
        }
    }

    /// The running pass or the last one.
    pub fn last(&self) -> Option<Arc<Pass>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a rotation in the background, or makes the running pass one; the pass.
    pub fn rotate(self: &Arc<Self>) -> Result<Arc<Pass>, ResealError> {
        let key = self
            .store
            .sealer()
            .sealing_key_id()
            .ok_or(ResealError::NoKeys)?;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pass) = last.as_ref().filter(|p| p.running()) {
            pass.rotate.store(true, Ordering::SeqCst);
            if !pass.closing.load(Ordering::SeqCst) {
                return Ok(pass.clone());
            }
        }
        let pass = Arc::new(Pass::new(key, true));
        *last = Some(pass.clone());
        let (resealer, running) = (self.clone(), pass.clone());
        tokio::spawn(async move { resealer.run(&running).await });
        Ok(pass)
    }

    /// At start: a pass, here and now, unless the store's values are all sealed with the
    /// key that seals now (its `sealed_with` mark names it), when subscriptions alone are
    /// looked at (another replica may have written some). Fails if the store cannot be read.
    pub async fn at_start(&self) -> Result<(), String> {
        let Some(key) = self.store.sealer().sealing_key_id() else {
            return Ok(());
        };
        let marked = self.store.mark(Mark::SealedWith).await?;
        if marked.as_deref() == Some(key.as_bytes()) {
            if let Some(subscriptions) = &self.subscriptions {
                let resealed = subscriptions.reseal().await.map_err(|e| e.to_string())?;
                METRICS.record_resealed("subscriptions", resealed as u64);
            }
            return Ok(());
        }
        let pass = Arc::new(Pass::new(key, false));
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(pass.clone());
        self.run(&pass).await
    }

    async fn run(&self, pass: &Pass) -> Result<(), String> {
        tracing::info!(key = %pass.key, "sealing the store's values with the first key of store.encryption.keys");
        let result = self.seal_all(pass).await;
        match &result {
            Ok(()) => tracing::info!(
                subscriptions = pass.subscriptions.load(Ordering::Relaxed),
                queue = pass.queue.resealed.load(Ordering::Relaxed),
                history = pass.history.resealed.load(Ordering::Relaxed),
                key_check_moved = pass.key_check_moved.load(Ordering::SeqCst),
                "every value the store keeps is sealed with the first key"
            ),
            Err(e) => tracing::warn!(error = %e, "the store's values are not all sealed anew"),
        }
        pass.finish(&result);
        result
    }

    async fn seal_all(&self, pass: &Pass) -> Result<(), String> {
        // The keys must open this store's key check: a pass never seals anew with keys
        // the store was not sealed with.
        self.store.check().await?;
        if let Some(subscriptions) = &self.subscriptions {
            let resealed = subscriptions.reseal().await.map_err(|e| e.to_string())? as u64;
            pass.subscriptions.store(resealed, Ordering::Relaxed);
            METRICS.record_resealed("subscriptions", resealed);
        }
        if let Some(queue) = &self.queue {
            pages(pass, &pass.queue, "queue", |after| {
                queue.reseal_page(after, PAGE)
            })
            .await?;
        }
        if let Some(history) = &self.history {
            pages(pass, &pass.history, "history", |after| {
                history.reseal_page(after, PAGE)
            })
            .await?;
        }
        let unreadable = pass.unreadable.load(Ordering::Relaxed);
        if unreadable > 0 {
            return Err(format!(
                "{unreadable} stored values do not open (see the log and hookgate_store_decrypt_errors_total); they are left as they are, and the key check stays"
            ));
        }
        let sealer = self.store.sealer();
        self.store
            .set_mark(Mark::SealedWith, pass.key.as_bytes())
            .await?;
        pass.closing.store(true, Ordering::SeqCst);
        if pass.rotate.load(Ordering::SeqCst) {
            let check = current_key_check(sealer).expect("a pass runs with keys");
            self.store.set_mark(Mark::KeyCheck, &check).await?;
            pass.key_check_moved.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Runs `page` from the start to the end of its table, counting into `progress`.
async fn pages<F, Fut>(
    pass: &Pass,
    progress: &Progress,
    table: &'static str,
    page: F,
) -> Result<(), String>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<ResealPage, StoreError>>,
{
    let mut after = None;
    loop {
        let done = page(after).await.map_err(|e| format!("{table}: {e}"))?;
        progress.add(&done);
        pass.unreadable
            .fetch_add(done.unreadable, Ordering::Relaxed);
        METRICS.record_resealed(table, done.resealed);
        match done.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}
