//! `POST /admin/reload[?allow_weaker=true]`: reads the config file now, as `SIGHUP` does,
//! except that a config lowering the protection of a path is held unless `allow_weaker`
//! says the operator means it (`hookgate reload --allow-weaker`).

use async_trait::async_trait;
use serde_json::{json, Value};

/// What a reload did, as the admin API and the log say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadReport {
    /// Swapped in; with the keys that keep their running values until a restart.
    Applied {
        hash: String,
        needs_restart: Vec<&'static str>,
    },
    /// Not applied: it would lower the protection of these paths.
    Held { hash: String, exposed: Vec<String> },
    /// Not applied: the file cannot be read or fails `hookgate check`.
    Refused { problems: Vec<String> },
    /// A poll saw the file change, and waits for it to stay the same (`reload_settle`).
    Settling,
    /// A poll saw no change.
    Unchanged,
}

impl ReloadReport {
    /// The result label of `hookgate_config_reloads_total`, when the reload counts.
    pub fn result(&self) -> Option<&'static str> {
        match self {
            ReloadReport::Applied { .. } => Some("applied"),
            ReloadReport::Held { .. } => Some("held"),
            ReloadReport::Refused { .. } => Some("refused"),
            ReloadReport::Settling | ReloadReport::Unchanged => None,
        }
    }

    /// The admin API's answer: its status and JSON body.
    pub fn answer(&self) -> (u16, Value) {
        match self {
            ReloadReport::Applied {
                hash,
                needs_restart,
            } => (
                200,
                json!({ "result": "applied", "hash": hash, "needs_restart": needs_restart }),
            ),
            ReloadReport::Held { hash, exposed } => (
                409,
                json!({
                    "error": "reload_held",
                    "message": "the new config lowers the protection of some paths; reload with allow_weaker=true (hookgate reload --allow-weaker) or SIGHUP to apply it",
                    "hash": hash,
                    "exposed": exposed,
                }),
            ),
            ReloadReport::Refused { problems } => (
                422,
                json!({ "error": "config_invalid", "message": "the config file fails its check; the running config stays", "problems": problems }),
            ),
            ReloadReport::Settling | ReloadReport::Unchanged => {
                (200, json!({ "result": "unchanged" }))
            }
        }
    }
}

/// The config reloader, as the admin port sees it.
#[async_trait]
pub trait ConfigReload: Send + Sync {
    /// Reads and applies the file now, holding a weaker config unless `allow_weaker`.
    async fn reload_now(&self, allow_weaker: bool) -> ReloadReport;
}
