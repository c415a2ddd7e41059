//! Whether the embedded store's files take writes, for `/readyz` and `hookgate_store_up`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::metrics::METRICS;

/// Whether the embedded store's files take writes. A full disk or an I/O error breaks a
/// redb file until it is reopened; the part that hit it says so here, `/readyz` reports
/// it, and the part says again once it has reopened and caught up.
#[derive(Default)]
pub struct StoreHealth {
    broken: Mutex<BTreeMap<&'static str, String>>,
}

impl StoreHealth {
    /// `part` (`dedupe` or `queue`) cannot write.
    pub fn failed(&self, part: &'static str, error: &dyn std::fmt::Display) {
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        if broken.insert(part, error.to_string()).is_none() {
            tracing::error!(part, %error, "the embedded store cannot write; retrying");
        }
        METRICS.store_up.set(0);
    }

    /// `part` writes again.
    pub fn recovered(&self, part: &'static str) {
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        if broken.remove(part).is_some() {
            tracing::info!(part, "the embedded store writes again");
        }
        METRICS.store_up.set(i64::from(broken.is_empty()));
    }

    pub fn is_broken(&self, part: &'static str) -> bool {
        let broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        broken.contains_key(part)
    }

    /// What is broken, for `/readyz`.
    pub fn problem(&self) -> Option<String> {
        let broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        (!broken.is_empty()).then(|| {
            broken
                .iter()
                .map(|(part, error)| format!("{part}: {error}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}
