//! Which subscriptions an event reaches, found through an index rather than a scan: per
//! tenant, enabled subscriptions by exact event type, by wildcard prefix (`application.*`
//! is filed under `application.`), and those that take every type (`*`). An event of type
//! `a.b.c` looks up `a.b.c`, then the prefixes `a.b.` and `a.`, then `*`: a handful of
//! hash lookups however many subscriptions there are. Filters on labels are checked on
//! the few found.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::values::pattern_matches;

use super::{input, MAX_TIMEOUT};
use crate::config::DeliveryPolicy;
use crate::store::subscriptions::Subscription;

/// Every subscription at one version of the store, indexed.
#[derive(Default)]
pub struct Index {
    pub version: u64,
    /// All of them, by id (ids sort in creation order).
    pub by_id: BTreeMap<String, Arc<Subscription>>,
    /// Enabled ones, by tenant (`None`: subscriptions without a tenant).
    tenants: HashMap<Option<String>, Types>,
    /// The longest any of them waits for an answer (zero without any): the worker's
    /// claims outlast it.
    pub longest_timeout: Duration,
}

#[derive(Default)]
struct Types {
    exact: HashMap<String, Vec<Arc<Subscription>>>,
    prefixes: HashMap<String, Vec<Arc<Subscription>>>,
    every: Vec<Arc<Subscription>>,
}

/// A wildcard's prefix: `application.*` → `application.`; `*` → the empty prefix.
fn wildcard_prefix(pattern: &str) -> Option<&str> {
    pattern.strip_suffix('*')
}

impl Index {
    pub fn new(version: u64, all: Vec<Subscription>) -> Self {
        let mut index = Index {
            version,
            ..Index::default()
        };
        for subscription in all {
            let subscription = Arc::new(subscription);
            if subscription.enabled {
                let types = index
                    .tenants
                    .entry(subscription.tenant.clone())
                    .or_default();
                for pattern in &subscription.event_types {
                    let list = match wildcard_prefix(pattern) {
                        Some("") => &mut types.every,
                        Some(prefix) => types.prefixes.entry(prefix.to_string()).or_default(),
                        None => types.exact.entry(pattern.clone()).or_default(),
                    };
                    list.push(subscription.clone());
                }
            }
            let timeout = match &subscription.retry {
                None => DeliveryPolicy::default().retry.timeout,
                Some(_) => input::policy(&subscription).map_or(MAX_TIMEOUT, |p| p.retry.timeout),
            };
            index.longest_timeout = index.longest_timeout.max(timeout);
            index.by_id.insert(subscription.id.clone(), subscription);
        }
        index
    }

    /// The enabled subscriptions of `tenant` that take `event_type` and whose filters the
    /// event's `labels` satisfy, each once, in creation order.
    pub fn matching(
        &self,
        tenant: Option<&str>,
        event_type: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Arc<Subscription>> {
        let Some(types) = self.tenants.get(&tenant.map(str::to_string)) else {
            return Vec::new();
        };
        let mut found: Vec<&Arc<Subscription>> = Vec::new();
        found.extend(types.exact.get(event_type).into_iter().flatten());
        for (i, _) in event_type.match_indices('.') {
            let prefix = &event_type[..=i];
            found.extend(types.prefixes.get(prefix).into_iter().flatten());
        }
        found.extend(&types.every);
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.dedup_by(|a, b| a.id == b.id); // one listing two patterns that both match
        found
            .into_iter()
            .filter(|s| s.filters.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(id: &str, tenant: Option<&str>, types: &[&str]) -> Subscription {
        Subscription {
            tenant: tenant.map(str::to_string),
            url: "https://example.com/hook".into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            ..Subscription::blank(id.into(), 0)
        }
    }

    fn ids(found: Vec<Arc<Subscription>>) -> Vec<String> {
        found.into_iter().map(|s| s.id.clone()).collect()
    }

    #[test]
    fn exact_types_wildcards_and_everything_match_once_each() {
        let mut job = subscription("s5", Some("a"), &["job.created"]);
        job.filters.insert("job_id".into(), "42".into());
        let mut off = subscription("s6", Some("a"), &["*"]);
        off.enabled = false;
        let index = Index::new(
            1,
            vec![
                subscription("s1", Some("a"), &["application.scored"]),
                subscription("s2", Some("a"), &["application.*", "application.scored"]),
                subscription("s3", Some("a"), &["*"]),
                subscription("s4", Some("b"), &["application.scored"]),
                job,
                off,
                subscription("s7", None, &["application.scored"]),
            ],
        );
        let none = BTreeMap::new();
        assert_eq!(
            ids(index.matching(Some("a"), "application.scored", &none)),
            ["s1", "s2", "s3"]
        );
        assert_eq!(ids(index.matching(Some("a"), "application", &none)), ["s3"]);
        assert_eq!(ids(index.matching(Some("a"), "job.created", &none)), ["s3"]);
        let job_42 = BTreeMap::from([("job_id".to_string(), "42".to_string())]);
        assert_eq!(
            ids(index.matching(Some("a"), "job.created", &job_42)),
            ["s3", "s5"]
        );
        assert_eq!(
            ids(index.matching(None, "application.scored", &none)),
            ["s7"]
        );
        assert!(index
            .matching(Some("c"), "application.scored", &none)
            .is_empty());
        assert_eq!(
            index.by_id.len(),
            7,
            "disabled ones are listed, not matched"
        );
    }

    #[test]
    fn ten_thousand_subscriptions_of_many_tenants_match_exactly() {
        let all = (0..10_000)
            .map(|i| {
                let tenant = format!("t{}", i % 100);
                let pattern = match i % 3 {
                    0 => format!("type{}.created", i % 50),
                    1 => format!("type{}.*", i % 50),
                    _ => "*".to_string(),
                };
                subscription(&format!("s{i:05}"), Some(&tenant), &[&pattern])
            })
            .collect();
        let index = Index::new(1, all);
        let found = index.matching(Some("t7"), "type7.created", &BTreeMap::new());
        // Tenant t7 holds subscriptions 7, 107, ...; of those, the "*" ones and the ones
        // to type7 (i % 50 == 7), exact or by wildcard.
        let expected: Vec<String> = (0..10_000)
            .filter(|i| i % 100 == 7 && (i % 3 == 2 || i % 50 == 7))
            .map(|i| format!("s{i:05}"))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(ids(found), expected);
    }
}
