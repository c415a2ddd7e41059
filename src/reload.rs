//! Live config reload. `SIGHUP`, or a change of the config file's content (read through
//! its path every second, so a Kubernetes ConfigMap update, which swaps a symlink, is seen
//! too), loads the file and checks it as `hookgate check` does. A config that fails is
//! refused: logged, counted, and the running one stays. Otherwise routes, secrets, limits,
//! endpoints and the file's subscriptions are swapped in whole: requests and deliveries in
//! flight finish with what they started with, queued messages stay queued, no connection
//! is dropped. What only a restart can change (listeners, the store...) is named in the log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService, GenBackgroundService};

use crate::config::{self, Config};
use crate::inbound::InboundApp;
use crate::metrics::{ConfigLabels, ReloadLabels, METRICS};
use crate::outbound::service::OutboundReload;
use crate::schemes::crypto::sha256_hex;

/// How often the file is read to see whether it changed.
const POLL: Duration = Duration::from_secs(1);

pub struct Reloader {
    path: PathBuf,
    /// The config the process started with: what a reload cannot change is compared to it.
    started: Config,
    /// The hash of the file's content last loaded (or refused: it is not tried again until
    /// it changes or `SIGHUP` asks).
    seen: Mutex<String>,
    inbound: Option<Arc<InboundApp>>,
    outbound: Option<OutboundReload>,
}

/// The first 16 hex digits of the SHA-256 of the file's bytes.
pub fn config_hash(text: &[u8]) -> String {
    sha256_hex(text)[..16].to_string()
}

/// Sets `hookgate_config_info{hash}` to the running config's hash (1) and drops the last.
fn show_hash(old: Option<&str>, new: &str) {
    if let Some(old) = old.filter(|o| *o != new) {
        METRICS.config_info.remove(&ConfigLabels {
            hash: old.to_string(),
        });
    }
    METRICS
        .config_info
        .get_or_create(&ConfigLabels {
            hash: new.to_string(),
        })
        .set(1);
}

fn count(result: &'static str) {
    METRICS
        .config_reloads
        .get_or_create(&ReloadLabels { result })
        .inc();
}

/// What differs between the started config and `new` that only a restart applies.
fn needs_restart(started: &Config, new: &Config) -> Vec<&'static str> {
    let differ =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut keys = Vec::new();
    let mut check = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    check("server", differ(&started.server, &new.server));
    check("admin", differ(&started.admin, &new.admin));
    check("store", differ(&started.store, &new.store));
    check("telemetry", differ(&started.telemetry, &new.telemetry));
    match (&started.inbound, &new.inbound) {
        (Some(a), Some(b)) => {
            check("inbound.listen", a.listen != b.listen);
            check("inbound.tls", differ(&a.tls, &b.tls));
            check("inbound.upstream", differ(&a.upstream, &b.upstream));
            check("inbound.limits", differ(&a.limits, &b.limits));
            check(
                "inbound.connect_timeout/upstream_timeout",
                (a.connect_timeout, a.upstream_timeout) != (b.connect_timeout, b.upstream_timeout),
            );
        }
        (a, b) => check("inbound", a.is_some() != b.is_some()),
    }
    match (&started.outbound, &new.outbound) {
        (Some(a), Some(b)) => {
            check("outbound.listen", a.listen != b.listen);
            check("outbound.proxy", differ(&a.proxy, &b.proxy));
            check("outbound.concurrency", a.concurrency != b.concurrency);
            check(
                "outbound.allow_private_destinations",
                differ(&a.allow_private_destinations, &b.allow_private_destinations),
            );
        }
        (a, b) => check("outbound", a.is_some() != b.is_some()),
    }
    keys
}

impl Reloader {
    /// A reloader for the config at `path`, which the process started with as `started`.
    pub fn service(
        path: PathBuf,
        started: &Config,
        inbound: Option<Arc<InboundApp>>,
        outbound: Option<OutboundReload>,
    ) -> GenBackgroundService<Reloader> {
        let hash = std::fs::read(&path)
            .map(|t| config_hash(&t))
            .unwrap_or_default();
        show_hash(None, &hash);
        background_service(
            "config reload",
            Reloader {
                path,
                started: started.clone(),
                seen: Mutex::new(hash),
                inbound,
                outbound,
            },
        )
    }

    /// Loads the file if `forced` (a `SIGHUP`) or if its content changed since last seen.
    async fn reload(&self, forced: bool) {
        let Ok(text) = tokio::fs::read(&self.path).await else {
            if forced {
                tracing::warn!(config = %self.path.display(), "config reload refused: the file cannot be read");
                count("refused");
            }
            return;
        };
        let hash = config_hash(&text);
        let previous = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !forced && *seen == hash {
                return;
            }
            std::mem::replace(&mut *seen, hash.clone())
        };
        let why = if forced { "SIGHUP" } else { "the file changed" };
        let config = match config::load_file(&self.path) {
            Ok(config) => config,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::warn!("config reload refused: {e}");
                }
                tracing::warn!(why, hash, "config reload refused; the running config stays");
                count("refused");
                return;
            }
        };
        if let Err(e) = self.apply(&config).await {
            tracing::warn!(why, hash, error = %e, "config reload refused; the running config stays");
            count("refused");
            return;
        }
        show_hash(Some(&previous), &hash);
        count("applied");
        let restart = needs_restart(&self.started, &config);
        if restart.is_empty() {
            tracing::info!(why, hash, "config reloaded");
        } else {
            tracing::warn!(why, hash, needs_restart = ?restart, "config reloaded; these keys keep their running values until a restart");
        }
    }

    /// Builds everything `config` needs first, then swaps it in: all or nothing.
    async fn apply(&self, config: &Config) -> Result<(), String> {
        let inbound = match (&self.inbound, &config.inbound) {
            (Some(app), Some(inbound)) => Some((app, app.prepare(inbound)?)),
            _ => None,
        };
        let outbound = match (&self.outbound, &config.outbound) {
            (Some(reload), Some(outbound)) => Some((reload, reload.prepare(outbound)?, outbound)),
            _ => None,
        };
        if let Some((app, live)) = inbound {
            app.apply(live);
        }
        if let Some((reload, live, outbound)) = outbound {
            reload.apply(live, outbound);
            // The file's subscriptions are written now, not at the next event.
            if let Err(e) = reload.subscriptions.index().await {
                tracing::warn!(error = %e, "the reloaded subscriptions will be written when the store answers");
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP cannot be caught; the config file is still watched");
                None
            }
        };
        let mut poll = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                Some(()) = async { match &mut hangup { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    self.reload(true).await
                }
                _ = poll.tick() => self.reload(false).await,
                _ = shutdown.changed() => return,
            }
        }
    }
}
