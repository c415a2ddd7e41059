//! `outbound.history`: retention and size. `outbound.operational`: an endpoint's keys (`url`, `sign`, `retry`...) for where the
//! events go besides the `hookgate` tenant's subscriptions, and when `delivery.failing` is
//! sent.

use super::*;
use crate::config::operational::{HistoryConfig, OperationalConfig, OPERATIONAL_ENDPOINT};
use crate::config::values::parse_size;

const SETTINGS: &[&str] = &["failing_after", "failing_window"];
const ENDPOINT_KEYS: &[&str] = &[
    "url",
    "sign",
    "retry",
    "concurrency",
    "rate_limit",
    "circuit",
    "tls",
];

impl Loader<'_> {
    /// The settings, and the endpoint when `url` is given.
    pub(super) fn operational(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Option<(OperationalConfig, Option<EndpointConfig>)> {
        let f = self.fields(node, path, &[SETTINGS, ENDPOINT_KEYS].concat())?;
        let defaults = OperationalConfig::default();
        let failing_after =
            self.with_default(&f, "failing_after", defaults.failing_after, |l, n, p| {
                l.whole(n, p, 1..=10_000)
            });
        let failing_window = self.duration_or(&f, "failing_window", defaults.failing_window);
        let endpoint = match f.get("url") {
            None => {
                self.not_allowed(&f, ENDPOINT_KEYS, "without url");
                None
            }
            Some(_) => {
                // The endpoint keys as an `endpoints` entry named `operational`.
                let Value::Map(entries) = &node.value else {
                    return None;
                };
                let mut entries: Vec<(Key, Node)> = entries
                    .iter()
                    .filter(|(k, _)| ENDPOINT_KEYS.contains(&k.name.as_str()))
                    .cloned()
                    .collect();
                let name = Key {
                    name: "name".into(),
                    at: node.at,
                };
                let value = Node {
                    value: Value::Str(OPERATIONAL_ENDPOINT.into()),
                    at: node.at,
                };
                entries.push((name, value));
                let endpoint = Node {
                    value: Value::Map(entries),
                    at: node.at,
                };
                Some(self.endpoint(&endpoint, path)?)
            }
        };
        Some((
            OperationalConfig {
                failing_after: failing_after?,
                failing_window: failing_window?,
            },
            endpoint,
        ))
    }

    pub(super) fn history(&mut self, node: &Node, path: &str) -> Option<HistoryConfig> {
        let f = self.fields(node, path, &["retention", "payload_retention", "max_bytes"])?;
        let defaults = HistoryConfig::default();
        let retention = self.duration_or(&f, "retention", defaults.retention);
        let payload = self.with_default(&f, "payload_retention", None, |l, n, p| {
            l.duration(n, p).map(Some)
        });
        let max_bytes = self.with_default(&f, "max_bytes", defaults.max_bytes, |l, n, p| {
            l.parsed(n, p, |s| {
                parse_size(s).and_then(|b| match b {
                    0 => Err("expected a size above 0".to_string()),
                    b => Ok(b),
                })
            })
        });
        let retention = retention?;
        let payload_retention = match payload? {
            Some(p) if p > retention => {
                let at = f.get("payload_retention").map_or(f.at, |n| n.at);
                self.error(
                    at,
                    &f.path("payload_retention"),
                    "longer than retention: payloads go with their rows",
                );
                return None;
            }
            Some(p) => p,
            None => retention,
        };
        Some(HistoryConfig {
            retention,
            payload_retention,
            max_bytes: max_bytes?,
        })
    }
}
