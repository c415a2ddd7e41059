//! Live config reload. `SIGHUP`, `POST /admin/reload`, or a change of the config file's
//! content (read through its path every second, so a Kubernetes ConfigMap update, which
//! swaps a symlink, is seen too, and applied once it stayed the same for
//! `server.reload_settle`) loads the file and checks it as `hookgate check` does. A config
//! that fails is refused: logged, counted, and the running one stays. One that would lower
//! the protection of a path (a half-written file missing its signed routes) is held
//! unless `SIGHUP` or `--allow-weaker` asked for it. Otherwise routes, secrets, limits,
//! endpoints and the file's subscriptions are swapped in whole: requests and deliveries in
//! flight finish with what they started with, queued messages stay queued, no connection
//! is dropped. What only a restart can change (listeners, the store...) is named in the log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService, GenBackgroundService};

use crate::admin::reload::{ConfigReload, ReloadReport};
use crate::config::{self, protection, Config};
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
    /// The config running now: a new one's protection of each path is compared to it.
    running: Mutex<Config>,
    seen: Mutex<Seen>,
    /// One reload at a time: the poll, a signal and the admin API may ask at once.
    serial: tokio::sync::Mutex<()>,
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

/// Why a reload runs, which decides whether a weaker config is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The poll saw the file change and stay the same for `reload_settle`.
    Poll,
    /// `SIGHUP`: the operator means it.
    Signal,
    /// `POST /admin/reload`, applying a weaker config only with `allow_weaker`.
    Admin { allow_weaker: bool },
}

impl Trigger {
    fn why(self) -> &'static str {
        match self {
            Trigger::Poll => "the file changed",
            Trigger::Signal => "SIGHUP",
            Trigger::Admin { .. } => "admin API",
        }
    }

    fn allows_weaker(self) -> bool {
        match self {
            Trigger::Poll => false,
            Trigger::Signal => true,
            Trigger::Admin { allow_weaker } => allow_weaker,
        }
    }
}

/// What the poll has seen of the file.
struct Seen {
    /// The hash of the content last loaded, held or refused: it is not tried again until
    /// it changes, or `SIGHUP` or the admin API asks.
    hash: String,
    /// A new content and when it was first seen: applied once it stays the same for
    /// `reload_settle` (a file written in place may be read half-written).
    changed: Option<(String, Instant)>,
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
                running: Mutex::new(started.clone()),
                seen: Mutex::new(Seen {
                    hash,
                    changed: None,
                }),
                serial: tokio::sync::Mutex::new(()),
                inbound,
                outbound,
            },
        )
    }

    /// Whether the poll should load the file now: its content differs from the last one
    /// seen and has stayed the same for `reload_settle`.
    fn settled(&self, hash: &str) -> bool {
        let settle = self.started.server.reload_settle;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.hash == hash {
            seen.changed = None;
            return false;
        }
        match &seen.changed {
            Some((changed, since)) if changed == hash && since.elapsed() >= settle => true,
            Some((changed, _)) if changed == hash => false,
            _ => {
                seen.changed = Some((hash.to_string(), Instant::now()));
                settle.is_zero()
            }
        }
    }

    /// Loads the file and applies it as `trigger` allows; a poll only once it settled.
    async fn reload(&self, trigger: Trigger) -> ReloadReport {
        let _one_at_a_time = self.serial.lock().await;
        let why = trigger.why();
        let text = match tokio::fs::read(&self.path).await {
            Ok(text) => text,
            Err(e) if trigger != Trigger::Poll => {
                tracing::warn!(config = %self.path.display(), error = %e, why, "config reload refused: the file cannot be read");
                count("refused");
                return ReloadReport::Refused {
                    problems: vec![format!("cannot read {}: {e}", self.path.display())],
                };
            }
            Err(_) => return ReloadReport::Unchanged,
        };
        let hash = config_hash(&text);
        if trigger == Trigger::Poll && !self.settled(&hash) {
            return ReloadReport::Settling;
        }
        let previous = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.changed = None;
            std::mem::replace(&mut seen.hash, hash.clone())
        };
        let config = match config::load_file(&self.path) {
            Ok(config) => config,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::warn!("config reload refused: {e}");
                }
                tracing::warn!(why, hash, "config reload refused; the running config stays");
                count("refused");
                return ReloadReport::Refused {
                    problems: errors.0.iter().map(ToString::to_string).collect(),
                };
            }
        };
        let exposed = self.lowered(&config);
        if !exposed.is_empty() && !trigger.allows_weaker() {
            tracing::warn!(
                why,
                hash,
                exposed = ?exposed,
                "config reload held: it lowers the protection of these paths; the running config stays. Send SIGHUP or run `hookgate reload --allow-weaker` to apply it (and write config files atomically: write a new file, then rename it)"
            );
            count("held");
            return ReloadReport::Held { hash, exposed };
        }
        if let Err(e) = self.apply(&config).await {
            tracing::warn!(why, hash, error = %e, "config reload refused; the running config stays");
            count("refused");
            return ReloadReport::Refused { problems: vec![e] };
        }
        show_hash(Some(&previous), &hash);
        count("applied");
        let restart = needs_restart(&self.started, &config);
        if !exposed.is_empty() {
            tracing::warn!(why, hash, exposed = ?exposed, "config reloaded with less protection on these paths, as asked");
        }
        if restart.is_empty() {
            tracing::info!(why, hash, "config reloaded");
        } else {
            tracing::warn!(why, hash, needs_restart = ?restart, "config reloaded; these keys keep their running values until a restart");
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = config;
        ReloadReport::Applied {
            hash,
            needs_restart: restart,
        }
    }

    /// The paths whose protection `config` lowers from the running config's.
    fn lowered(&self, config: &Config) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let routes = |c: &Config| {
            c.inbound
                .as_ref()
                .map(|i| i.routes.clone())
                .unwrap_or_default()
        };
        protection::lowered(&routes(&running), &routes(config))
            .iter()
            .map(ToString::to_string)
            .collect()
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
impl ConfigReload for Reloader {
    async fn reload_now(&self, allow_weaker: bool) -> ReloadReport {
        self.reload(Trigger::Admin { allow_weaker }).await
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
                    self.reload(Trigger::Signal).await;
                }
                _ = poll.tick() => {
                    self.reload(Trigger::Poll).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
