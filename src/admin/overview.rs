//! `GET /admin/overview`, the console's first page: per inbound route, requests in the
//! last minute and hour by outcome; outbound deliveries and failures; a series per minute
//! over the last hour for the chart. Read from the Prometheus counters every 10 s by a
//! background sampler, so the request paths do no work for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Value};

use crate::clock::now_ms;
use crate::metrics::METRICS;

/// How often the counters are read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// An hour of samples, and the one before it.
const SAMPLES: usize = 361;

/// The counters at one moment.
#[derive(Clone, Default)]
struct Sample {
    at_ms: u64,
    /// (route, outcome) → requests answered.
    inbound: BTreeMap<(String, String), u64>,
    /// outcome (`delivered`, `retry_scheduled`, `dead`, `sync_failed`) → attempts.
    outbound: BTreeMap<String, u64>,
}

/// The label values of a series line such as `name{a="x",b="y"} 12`, and its value.
fn series<'a>(line: &'a str, name: &str) -> Option<(Vec<(&'a str, &'a str)>, u64)> {
    let rest = line.strip_prefix(name)?.strip_prefix('{')?;
    let (labels, value) = rest.split_once("} ")?;
    let value = value.trim().parse::<f64>().ok()? as u64;
    let labels = labels
        .split("\",")
        .filter_map(|pair| pair.split_once("=\""))
        .map(|(k, v)| (k, v.trim_end_matches('"')))
        .collect();
    Some((labels, value))
}

fn read_counters() -> Sample {
    let text = METRICS.render();
    let mut sample = Sample {
        at_ms: now_ms(),
        ..Sample::default()
    };
    for line in text.lines() {
        if let Some((labels, n)) = series(line, "hookgate_inbound_requests_total") {
            let label = |k: &str| {
                labels
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map_or("", |(_, v)| *v)
            };
            *sample
                .inbound
                .entry((label("route").to_string(), label("outcome").to_string()))
                .or_default() += n;
        } else if let Some((labels, n)) = series(line, "hookgate_outbound_messages_total") {
            let outcome = labels
                .iter()
                .find(|(k, _)| *k == "outcome")
                .map_or("", |(_, v)| *v);
            *sample.outbound.entry(outcome.to_string()).or_default() += n;
        }
    }
    sample
}

pub struct Overview {
    samples: Mutex<VecDeque<Sample>>,
}

impl Default for Overview {
    fn default() -> Self {
        Overview {
            samples: Mutex::new(VecDeque::from([read_counters()])),
        }
    }
}

fn delta<K: Ord + Clone>(now: &BTreeMap<K, u64>, then: &BTreeMap<K, u64>) -> BTreeMap<K, u64> {
    now.iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n.saturating_sub(then.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

impl Overview {
    fn sample(&self) {
        let sample = read_counters();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The inbound and outbound figures over the last minute and hour (or since start),
    /// with the counters read now, and a per-minute series for the chart.
    pub fn report(&self) -> Value {
        let now = read_counters();
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = samples.front().cloned().unwrap_or_default();
        let at_or_before = |ago_ms: u64| {
            let cutoff = now.at_ms.saturating_sub(ago_ms);
            samples
                .iter()
                .rev()
                .find(|s| s.at_ms <= cutoff)
                .cloned()
                .unwrap_or_else(|| oldest.clone())
        };
        let minute = at_or_before(60_000);
        let mut routes: BTreeMap<String, Value> = BTreeMap::new();
        for (window, then) in [("last_minute", &minute), ("last_hour", &oldest)] {
            for ((route, outcome), n) in delta(&now.inbound, &then.inbound) {
                let entry = routes.entry(route.clone()).or_insert_with(|| {
                    json!({ "route": route, "last_minute": {"requests": 0, "forwarded": 0, "duplicates": 0, "refused": {}}, "last_hour": {"requests": 0, "forwarded": 0, "duplicates": 0, "refused": {}} })
                });
                let w = &mut entry[window];
                w["requests"] = json!(w["requests"].as_u64().unwrap_or(0) + n);
                match outcome.as_str() {
                    "forwarded" => w["forwarded"] = json!(n),
                    "duplicate" => w["duplicates"] = json!(n),
                    reason => w["refused"][reason] = json!(n),
                }
            }
        }
        let outbound = |then: &Sample| json!(delta(&now.outbound, &then.outbound));
        // One point per minute over the last hour: what happened in that minute.
        let mut chart = Vec::new();
        for minute in (0..60u64).rev() {
            let (start, end) = (
                at_or_before((minute + 1) * 60_000),
                at_or_before(minute * 60_000),
            );
            let end = if minute == 0 { &now } else { &end };
            let inbound = delta(&end.inbound, &start.inbound);
            let sum = |f: &dyn Fn(&str) -> bool| -> u64 {
                inbound
                    .iter()
                    .filter(|((_, o), _)| f(o))
                    .map(|(_, n)| n)
                    .sum()
            };
            let out = delta(&end.outbound, &start.outbound);
            chart.push(json!({
                "minutes_ago": minute,
                "forwarded": sum(&|o| o == "forwarded"),
                "duplicates": sum(&|o| o == "duplicate"),
                "refused": sum(&|o| o != "forwarded" && o != "duplicate"),
                "delivered": out.get("delivered").copied().unwrap_or(0),
                "failed": out.iter().filter(|(k, _)| k.as_str() != "delivered").map(|(_, n)| n).sum::<u64>(),
            }));
        }
        let since_ms = now.at_ms.saturating_sub(oldest.at_ms);
        json!({
            "at_ms": now.at_ms,
            "covered_ms": since_ms,
            "inbound": routes.into_values().collect::<Vec<_>>(),
            "outbound": { "last_minute": outbound(&minute), "last_hour": outbound(&oldest) },
            "chart": chart,
        })
    }
}

/// Reads the counters every [`SAMPLE_EVERY`].
pub struct Sampler(pub std::sync::Arc<Overview>);

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.0.sample(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_lines_are_read_with_their_labels() {
        let (labels, n) = series(
            "hookgate_inbound_requests_total{route=\"github\",outcome=\"forwarded\",status=\"200\"} 12",
            "hookgate_inbound_requests_total",
        )
        .unwrap();
        assert_eq!(n, 12);
        assert_eq!(
            labels,
            [
                ("route", "github"),
                ("outcome", "forwarded"),
                ("status", "200")
            ]
        );
        assert!(series(
            "hookgate_inbound_requests_created{route=\"a\"} 1",
            "hookgate_inbound_requests_total"
        )
        .is_none());
    }

    #[test]
    fn the_report_counts_what_happened_since_the_samples() {
        let overview = Overview::default();
        METRICS.record_inbound("overview-test", "forwarded", 200, Duration::ZERO);
        METRICS.record_inbound("overview-test", "invalid_signature", 401, Duration::ZERO);
        METRICS.record_inbound("overview-test", "invalid_signature", 401, Duration::ZERO);
        let report = overview.report();
        let route = report["inbound"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "overview-test")
            .unwrap()
            .clone();
        assert_eq!(route["last_minute"]["requests"], 3);
        assert_eq!(route["last_hour"]["forwarded"], 1);
        assert_eq!(route["last_hour"]["refused"]["invalid_signature"], 2);
        let chart = report["chart"].as_array().unwrap();
        assert_eq!(chart.len(), 60);
        assert!(chart[59]["refused"].as_u64().unwrap() >= 2);
    }
}
