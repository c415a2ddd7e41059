//! End-to-end throughput of the real binary on loopback (not a test; figures go in the
//! README). Starts `hookgate run` in front of / behind a small hyper receiver and measures:
//! - inbound: signed webhooks/s verified and forwarded, with p50/p99 latency;
//! - outbound: messages/s accepted durably (202 after an fsync'd commit), and messages/s
//!   delivered signed to the receiver.
//!
//! cargo bench --bench throughput          (HOOKGATE_BENCH_N=5000 to change the count)
//! HOOKGATE_BENCH_REDIS=redis://127.0.0.1:6379 cargo bench --bench throughput
//!                                         (the same over the Redis store)

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hookgate::clock::unix_now;
use hookgate::schemes::{Message, SchemeSpec, Verifier};
use http_body_util::{BodyExt, Full};

const CONCURRENCY: usize = 32;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A receiver that answers 200 and counts what it got.
async fn receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            let _ = req.into_body().collect().await;
                            counter.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, count)
}

struct Hookgate(Child);

impl Drop for Hookgate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("HOOKGATE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let (app, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let (inbound, outbound, admin) = (free_port(), free_port(), free_port());
    let config = dir.path().join("bench.yaml");
    let store = match std::env::var("HOOKGATE_BENCH_REDIS") {
        Ok(url) => format!(
            "{{ kind: redis, url: \"{url}\", key_prefix: \"hookgate-bench:{}:\" }}",
            hookgate::outbound::new_delivery_id()
        ),
        Err(_) => format!("{{ path: {}/data }}", dir.path().display()),
    };
    println!("store: {store}");
    // The rate limit never refuses; it makes every request consult the store.
    std::fs::write(
        &config,
        format!(
            "server: {{ threads: 2 }}\nadmin: {{ listen: 127.0.0.1:{admin} }}\nstore: {store}\n\
             inbound:\n  listen: 127.0.0.1:{inbound}\n  upstream: http://{app}\n  routes:\n\
             \x20   - {{ name: rejento, path: /hooks/rejento, verify: {{ scheme: rejento, secrets: [bench-secret] }}, rate_limit: {{ key: route, limit: 1000000/s }} }}\n\
             outbound:\n  listen: 127.0.0.1:{outbound}\n  endpoints:\n\
             \x20   - {{ name: bench, url: \"http://{app}/out\", sign: {{ scheme: rejento, secret: bench-secret }} }}\n"
        ),
    )
    .unwrap();
    let _hookgate = Hookgate(
        Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["run", "-c"])
            .arg(&config)
            .env("HOOKGATE_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{admin}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "hookgate did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Inbound: verified and forwarded.
    let body = br#"{"event":"candidate.created","data":{"id":"cand_123","score":87}}"#.repeat(4);
    let signer = Verifier::new(
        &SchemeSpec::Named("rejento".into()),
        &["bench-secret"],
        None,
    )
    .unwrap();
    let headers = signer
        .sign(&Message {
            id: "bench",
            timestamp: unix_now(),
            method: "POST",
            url: None,
            body: &body,
        })
        .unwrap();
    let url = format!("http://127.0.0.1:{inbound}/hooks/rejento");
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
    let before = received.load(Ordering::Relaxed);
    let url = format!("http://127.0.0.1:{outbound}/bench");
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
    while received.load(Ordering::Relaxed) - before < n {
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
