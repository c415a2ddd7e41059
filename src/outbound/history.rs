//! Keeps every delivered message (and its payload) in the store's delivery history ([`HistoryStore`]): the
//! worker hands each one over without waiting ([`HistoryWriter::delivered`]), and a
//! background task writes them in batches (one transaction or script per batch) and sweeps
//! what outlived `outbound.history`'s retention or size, and the dead letters past
//! `outbound.dead_letter_ttl`, never on a request's path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::config::{HistoryConfig, OutboundConfig};
use crate::metrics::METRICS;
use crate::store::history::{Delivered, Sweep};
use crate::store::queue::{Bucket, DeliveryFilter, Queue, Record, State};
use crate::store::HistoryStore;

/// Delivered messages waiting to be written, and their payloads' bytes: beyond either they
/// are not kept (and counted), so a burst of large messages cannot take the memory.
const BACKLOG: usize = 50_000;
const BACKLOG_BYTES: usize = 64 << 20;
/// Rows per write, and how long a write waits for more once it has some: a few large
/// writes cost far less than many small ones (each rewrites the pages of every index it
/// touches).
const BATCH: usize = 2048;
const GATHER: Duration = Duration::from_millis(100);
/// How often the history is swept, unless its retention is short (a quarter of it).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

type Row = (Delivered, Option<Vec<u8>>);

/// Where the worker hands over what it delivered. Cheap to clone.
#[derive(Clone)]
pub struct HistoryWriter {
    sender: mpsc::Sender<Row>,
    keep_payloads: bool,
    /// Payload bytes waiting in the channel.
    waiting: Arc<AtomicUsize>,
}

impl HistoryWriter {
    /// `record` (with its last attempt) was delivered at `at_ms` with `body`.
    pub fn delivered(&self, record: Record, body: &[u8], at_ms: u64) {
        let row = Delivered {
            record: record.redacted(),
            delivered_ms: at_ms,
            payload_bytes: body.len(),
        };
        let payload = self.keep_payloads.then(|| body.to_vec());
        let size = body.len();
        let full = self.waiting.fetch_add(size, Ordering::AcqRel) + size > BACKLOG_BYTES;
        if full || self.sender.try_send((row, payload)).is_err() {
            self.waiting.fetch_sub(size, Ordering::AcqRel);
            METRICS.record_history("dropped", 1);
            tracing::warn!(
                "delivery history: the backlog is full, a delivered message is not kept"
            );
        }
    }
}

/// Writes the history in batches and sweeps it.
pub struct HistoryService {
    store: Arc<dyn HistoryStore>,
    /// Its dead letters expire after `dead_letter_ttl`, swept with the history.
    queue: Arc<dyn Queue>,
    dead_letter_ttl: Duration,
    waiting: Arc<AtomicUsize>,
    rows: Mutex<Option<mpsc::Receiver<Row>>>,
    config: HistoryConfig,
}

/// The writer the worker uses, and the service that empties it.
pub fn history(
    store: Arc<dyn HistoryStore>,
    queue: Arc<dyn Queue>,
    config: &OutboundConfig,
) -> (HistoryWriter, HistoryService) {
    let (dead_letter_ttl, config) = (config.dead_letter_ttl, &config.history);
    let (sender, receiver) = mpsc::channel(BACKLOG);
    let waiting = Arc::new(AtomicUsize::new(0));
    let writer = HistoryWriter {
        sender,
        keep_payloads: !config.payload_retention.is_zero(),
        waiting: waiting.clone(),
    };
    let service = HistoryService {
        store,
        queue,
        dead_letter_ttl,
        waiting,
        rows: Mutex::new(Some(receiver)),
        config: config.clone(),
    };
    (writer, service)
}

impl HistoryService {
    async fn write(&self, batch: Vec<Row>) {
        let count = batch.len();
        let bytes = batch.iter().map(|(row, _)| row.payload_bytes).sum();
        self.waiting.fetch_sub(bytes, Ordering::AcqRel);
        match self.store.keep(batch).await {
            Ok(()) => METRICS.record_history("kept", count),
            Err(e) => {
                METRICS.record_history("failed", count);
                tracing::warn!(error = %e, rows = count, "delivery history: rows not written");
            }
        }
    }

    async fn sweep(&self) {
        let now = now_ms();
        let ago = |d: Duration| now.saturating_sub(d.as_millis() as u64);
        let sweep = Sweep {
            before_ms: ago(self.config.retention),
            payloads_before_ms: ago(self.config.payload_retention),
            max_bytes: self.config.max_bytes,
        };
        let expired = DeliveryFilter {
            until_ms: Some(ago(self.dead_letter_ttl)),
            bucket: Some(Bucket::Dead),
            ..DeliveryFilter::default()
        };
        match self.queue.purge(&expired, State::Dead).await {
            Ok(0) => {}
            Ok(purged) => {
                METRICS.record_dead_letters_expired(purged);
                tracing::info!(purged, "dead letters past dead_letter_ttl deleted");
            }
            Err(e) => tracing::warn!(error = %e, "dead letters: the sweep failed"),
        }
        match self.store.sweep(sweep).await {
            Ok(0) => {}
            Ok(swept) => {
                METRICS.record_history("swept", swept);
                tracing::debug!(swept, "delivery history swept");
            }
            Err(e) => tracing::warn!(error = %e, "delivery history: the sweep failed"),
        }
    }
}

#[async_trait]
impl BackgroundService for HistoryService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rows) = self.rows.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let every = SWEEP_EVERY
            .min(
                self.config
                    .payload_retention
                    .max(Duration::from_millis(400))
                    / 4,
            )
            .min(self.config.retention / 4)
            .min(self.dead_letter_ttl / 4)
            .max(Duration::from_millis(100));
        // A sweep also makes the rows written before it durable: after a write, one comes
        // within a second (the store may write rows without an fsync until then).
        let mut tick = tokio::time::interval(every.min(Duration::from_secs(1)));
        let (mut last_sweep, mut written) = (std::time::Instant::now(), false);
        loop {
            tokio::select! {
                row = rows.recv() => {
                    let Some(row) = row else { return };
                    let mut batch = vec![row];
                    let until = tokio::time::Instant::now() + GATHER;
                    while batch.len() < BATCH {
                        match tokio::time::timeout_at(until, rows.recv()).await {
                            Ok(Some(row)) => batch.push(row),
                            Ok(None) | Err(_) => break,
                        }
                    }
                    self.write(batch).await;
                    written = true;
                }
                _ = tick.tick() => {
                    if written || last_sweep.elapsed() >= every {
                        self.sweep().await;
                        (last_sweep, written) = (std::time::Instant::now(), false);
                    }
                }
                _ = shutdown.changed() => {
                    // What the worker delivered before the end is kept too, durably.
                    let mut batch = Vec::new();
                    while let Ok(row) = rows.try_recv() {
                        batch.push(row);
                    }
                    if !batch.is_empty() {
                        self.write(batch).await;
                    }
                    self.sweep().await;
                    return;
                }
            }
        }
    }
}
