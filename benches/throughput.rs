//! End-to-end throughput of the real binary on loopback (not a test; figures go in the
//! README). Starts `hookgate run` in front of / behind a small hyper receiver and measures:
//! - inbound: signed webhooks/s verified and forwarded, with p50/p99 latency;
//! - outbound: messages/s accepted durably (202 after an fsync'd commit), and messages/s
//!   delivered signed to the receiver.
//!
//! cargo bench --bench throughput          (HOOKGATE_BENCH_N=5000 to change the count)
//! HOOKGATE_BENCH_REDIS=redis://127.0.0.1:6379 cargo bench --bench throughput
//!                                         (the same over the Redis store)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::{acme_endpoint, sign, Gateway, TestApp};

const CONCURRENCY: usize = 32;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("HOOKGATE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let app = TestApp::start().await;
    // The rate limit never refuses; it makes every request consult the store.
    let mut builder = Gateway::builder(app.url())
        .threads(2)
        .routes("    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [bench-secret] }, rate_limit: { key: route, limit: 1000000/s } }\n")
        .endpoints(&acme_endpoint(&app, "/out", ""))
        .env("HOOKGATE_LOG", "warn");
    if let Ok(url) = std::env::var("HOOKGATE_BENCH_REDIS") {
        let prefix = format!("hookgate-bench:{}:", hookgate::ids::new_delivery_id());
        println!("store: Redis at {url}, prefix {prefix}");
        builder = builder.redis(&url, &prefix);
    } else {
        println!("store: embedded");
    }
    let gateway = builder.start().await;
    let client = reqwest::Client::new();

    // Inbound: verified and forwarded.
    let body = br#"{"event":"candidate.created","data":{"id":"cand_123","score":87}}"#.repeat(4);
    let headers = sign("rejento", "bench-secret", "bench", &body, None);
    let url = gateway.url("/hooks/rejento");
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures_util::stream::iter(0..n)
        .map(|_| {
            let mut request = client.post(&url).body(body.clone());
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            async move {
                let sent = Instant::now();
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                sent.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "inbound  {n} signed webhooks of {} B, {CONCURRENCY} concurrent: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        body.len(),
        n as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );

    // Outbound: accepted durably, then delivered.
    let before = app.received().len();
    let url = format!("http://{}/acme", gateway.outbound);
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|_| {
            let request = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.clone());
            async move { assert_eq!(request.send().await.unwrap().status(), 202) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let accepted = started.elapsed();
    while app.received().len() - before < n {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered = started.elapsed();
    println!(
        "outbound {n} messages, {CONCURRENCY} concurrent: accepted (fsync'd) {:.0} msg/s; all delivered after {:.2} s = {:.0} msg/s end to end",
        n as f64 / accepted.as_secs_f64(),
        delivered.as_secs_f64(),
        n as f64 / delivered.as_secs_f64()
    );
}
