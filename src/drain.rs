//! What a SIGTERM waits for: the requests and delivery attempts under way in this
//! process, counted by [`InFlight`] guards, and the signal that the process is stopping,
//! on which the services stop taking more work of their own (keep-alive, claims) and flush
//! what they hold. `shutdown.rs` waits for the count to reach zero.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::LazyLock;

use tokio::sync::watch;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Read on every request: a plain load, not the watch's lock.
static STOPPING_NOW: AtomicBool = AtomicBool::new(false);
/// For the services that wait for it.
static STOPPING: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::Sender::new(false));

/// Held while one request, delivery attempt or span export is under way.
#[must_use = "the work counts as under way only while the guard is held"]
pub struct InFlight(());

impl InFlight {
    pub fn begin() -> Self {
        IN_FLIGHT.fetch_add(1, Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Relaxed);
    }
}

/// How many [`InFlight`] guards are held now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Relaxed)
}

/// Tells the services that the process is stopping.
pub fn begin_stopping() {
    STOPPING_NOW.store(true, Relaxed);
    STOPPING.send_replace(true);
}

pub fn is_stopping() -> bool {
    STOPPING_NOW.load(Relaxed)
}

/// Resolves once the process is stopping.
pub async fn stopping() {
    let mut watch = STOPPING.subscribe();
    let _ = watch.wait_for(|stopping| *stopping).await;
}
