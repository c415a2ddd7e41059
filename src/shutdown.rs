//! How hookgate stops. SIGINT stops at once. On SIGTERM, Pingora would close the
//! listeners and then sleep the whole grace period, however little is in flight (an idle
//! sidecar took 5 s to stop, and printed some 30 lines). Here a SIGTERM instead tells the
//! services to stop taking work of their own ([`drain::begin_stopping`]: connections are
//! not kept alive, the worker claims no more, spans are flushed) and waits until nothing
//! is under way, at most `server.grace_period`; only then does Pingora close the listeners
//! (with no grace period of its own) and give its runtimes `server.shutdown_timeout`.
//! Until then the listeners still answer: a load balancer may still send a request or two
//! while it takes the pod out.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch};

use crate::{drain, telemetry};

/// How the process stopped, for its last log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stopped {
    pub signal: &'static str,
    /// How long the wait for work under way took.
    pub drained_in: Duration,
    /// Requests, attempts and spans still under way when the grace period ran out.
    pub cut: usize,
}

/// Pingora's signal watch, draining on SIGTERM first.
pub struct Signals {
    pub grace: Duration,
    pub stopped: std::sync::Arc<std::sync::Mutex<Stopped>>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let signal = UnixShutdownSignalWatch.recv().await;
        let name = match signal {
            ShutdownSignal::GracefulTerminate => "SIGTERM",
            ShutdownSignal::FastShutdown => "SIGINT",
            ShutdownSignal::GracefulUpgrade => "SIGQUIT",
        };
        let mut stopped = Stopped {
            signal: name,
            ..Stopped::default()
        };
        if let ShutdownSignal::GracefulTerminate = signal {
            drain::begin_stopping();
            let started = Instant::now();
            if drain::in_flight() > 0 {
                tracing::info!(in_flight = drain::in_flight(), grace_period = ?self.grace, "SIGTERM: finishing what is under way");
            }
            // Idle on two looks in a row: the exporter takes a batch off its queue and
            // counts it under way in one step, which a single look could fall between.
            let busy = || drain::in_flight() + telemetry::unexported();
            let mut idle_looks = 0;
            while idle_looks < 2 && started.elapsed() < self.grace {
                idle_looks = if busy() == 0 { idle_looks + 1 } else { 0 };
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stopped.drained_in = started.elapsed();
            stopped.cut = busy();
        }
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = stopped;
        signal
    }
}
