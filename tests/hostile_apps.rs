//! Findings 3 and 8 of the hardening review: an app that stalls or hangs up mid-answer.
//! The provider gets a clean answer within `upstream_timeout`, and the app sees each
//! provider attempt at most once.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a [`RawApp`] treats each request it reads.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// `200` headers promising 100 bytes, three bytes, then silence.
    StallMidAnswer,
    /// Answers a connection's first request; reads its second and closes without a word,
    /// as an app that crashed while handling it would.
    HangUpOnSecond,
}

/// An app on a raw socket, so it can misbehave in ways no HTTP library allows.
struct RawApp {
    url: String,
    requests: Arc<AtomicU32>,
}

impl RawApp {
    async fn start(misbehaviour: Misbehaviour) -> RawApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU32::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    for nth in 1.. {
                        let mut seen = Vec::new();
                        let mut buf = [0u8; 4096];
                        // Bodies here are small enough to arrive with the head.
                        while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        match (misbehaviour, nth) {
                            (Misbehaviour::StallMidAnswer, _) => {
                                let _ = socket
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
                                    .await;
                                tokio::time::sleep(Duration::from_secs(60)).await;
                                return;
                            }
                            (Misbehaviour::HangUpOnSecond, 1) => {
                                let _ = socket
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                                    .await;
                            }
                            (Misbehaviour::HangUpOnSecond, _) => return,
                        }
                    }
                });
            }
        });
        RawApp { url, requests }
    }

    fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }
}

const DEDUPED: &str =
    "    - { name: test, path: /hooks/test, verify: none, dedupe: { id: \"header:X-Delivery\" } }\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_stalls_mid_answer_gets_the_provider_a_504_within_the_timeout() {
    let app = RawApp::start(Misbehaviour::StallMidAnswer).await;
    let gateway = Gateway::builder(app.url.clone())
        .routes(DEDUPED)
        .inbound("  upstream_timeout: 1s\n")
        .start()
        .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let first = gateway.deliver(&client, "d-1").await;
    assert_eq!(first.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let json: serde_json::Value = first.json().await.unwrap();
    assert_eq!(json["error"], "upstream_timeout");
    // The app answered 200 before stalling: the delivery counts as delivered, so the
    // provider's retries are duplicates and never reach the app again.
    for _ in 0..3 {
        let retry = gateway.deliver(&client, "d-1").await;
        assert_eq!(retry.status(), 200);
        assert_eq!(retry.headers()["hookgate-duplicate"], "true");
    }
    assert_eq!(app.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_hangs_up_without_answering_sees_the_request_once() {
    let app = RawApp::start(Misbehaviour::HangUpOnSecond).await;
    let gateway = Gateway::builder(app.url.clone()).start().await;
    let client = reqwest::Client::new();
    let send = |id: &'static str| {
        client
            .post(gateway.url("/hooks/test"))
            .header("X-Delivery", id)
            .body("{}")
            .send()
    };
    assert_eq!(send("first").await.unwrap().status(), 200);
    // On the pooled connection: the app reads the request whole and hangs up. It may have
    // acted on it, so hookgate must not send it again; the provider gets a 502 and retries.
    assert_eq!(send("second").await.unwrap().status(), 502);
    assert_eq!(app.requests(), 2);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("hookgate_inbound_upstream_resends_total 0"),
        "{metrics}"
    );
}
