//! The fault-injection suite's Redis scenarios: Redis slowed (`DEBUG SLEEP`) and stopped
//! (`SIGSTOP`, a frozen VM or a full swap). A request never hangs on the store: it gets a
//! stable 503 within the command timeout, `/readyz` says why, and everything heals once
//! Redis answers again, without a restart of hookgate. (Killed and restarted Redis:
//! `tests/redis_replicas.rs`.)

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_port, Gateway, RedisServer, TestApp};

async fn webhook(gateway: &Gateway, id: &str) -> (u16, Duration) {
    let started = Instant::now();
    let answer = gateway.deliver(&reqwest::Client::new(), id).await;
    (answer.status().as_u16(), started.elapsed())
}

async fn until_ready(gateway: &Gateway, status: u16) {
    let started = Instant::now();
    while reqwest::get(gateway.admin_url("/readyz"))
        .await
        .unwrap()
        .status()
        != status
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/readyz never said {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowed_or_stopped_redis_gets_quick_503s_and_heals() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let redis = RedisServer::start(
        dir.path(),
        port,
        &[
            "--port",
            &port.to_string(),
            "--enable-debug-command",
            "local",
        ],
    );
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .redis(&format!("redis://127.0.0.1:{port}/0"), "fault:")
        .routes("    - { name: test, path: /hooks/test, verify: none, dedupe: { id: \"header:X-Delivery\" } }\n")
        .start()
        .await;
    assert_eq!(webhook(&gateway, "before").await.0, 200);
    let baseline = gateway.resources();

    // Slowed: one command holds Redis for 3 s.
    let sleeper = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "3"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until Redis is asleep: a fixed wait let a loaded machine start the sleep late, in
    // the middle of the next delivery.
    let started = Instant::now();
    while Command::new("timeout")
        .args(["0.3", "redis-cli", "-p", &port.to_string(), "PING"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "Redis never slept"
        );
    }
    let (status, took) = webhook(&gateway, "slowed").await;
    assert_eq!(status, 503);
    assert!(
        took < Duration::from_millis(2_000),
        "waited {took:?} on a slow Redis"
    );
    let _ = sleeper.wait_with_output();
    let (status, _) = webhook(&gateway, "slowed").await;
    assert_eq!(
        status, 200,
        "the same delivery goes through once Redis answers"
    );

    // Stopped: the process is frozen, its socket stays open.
    redis.signal("STOP");
    let (status, took) = webhook(&gateway, "stopped").await;
    assert_eq!(status, 503);
    assert!(
        took < Duration::from_millis(2_000),
        "waited {took:?} on a stopped Redis"
    );
    until_ready(&gateway, 503).await;
    redis.signal("CONT");
    until_ready(&gateway, 200).await;
    // A claim sent while Redis was frozen may still run when it thaws: its id is then
    // held for the claim lease, and the sender's retry meanwhile gets 409 with Retry-After.
    let (status, _) = webhook(&gateway, "stopped").await;
    assert!(matches!(status, 200 | 409), "{status}");
    assert_eq!(webhook(&gateway, "after").await.0, 200);
    assert_eq!(webhook(&gateway, "after").await.0, 200, "a duplicate");
    let received: Vec<_> = app
        .received()
        .iter()
        .map(|r| r.header("x-delivery").unwrap().to_string())
        .filter(|id| id != "stopped")
        .collect();
    assert_eq!(received, ["before", "slowed", "after"]);

    let after = gateway.resources();
    println!("Redis slowed and stopped: (descriptors, RSS KiB) {baseline:?} -> {after:?}");
    assert!(
        after.0 <= baseline.0 + 8,
        "descriptors {baseline:?} -> {after:?}"
    );
}

/// `deliver: queue` on Redis: a stopped Redis gets `503 queue_unavailable` quickly, never
/// a 200, and every webhook acknowledged before and after reaches the app.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_redis_refuses_queued_webhooks_and_loses_no_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let redis = RedisServer::start(dir.path(), port, &["--port", &port.to_string()]);
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .redis(&format!("redis://127.0.0.1:{port}/0"), "fault-queue:")
        .routes("    - { name: test, path: /hooks/test, verify: none, deliver: queue }\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let send = |id: &'static str| {
        client
            .post(gateway.url("/hooks/test"))
            .header("X-Delivery", id)
            .body("{}")
            .send()
    };
    assert_eq!(send("before").await.unwrap().status(), 200);
    app.wait_for(1).await;

    redis.signal("STOP");
    let started = Instant::now();
    let answer = send("stopped").await.unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    let json: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(json["error"], "queue_unavailable");
    assert!(
        took < Duration::from_secs(2),
        "waited {took:?} on a stopped Redis"
    );
    redis.signal("CONT");
    until_ready(&gateway, 200).await;

    assert_eq!(send("after").await.unwrap().status(), 200);
    // The refused one may have been written as Redis thawed (then it is delivered too);
    // both acknowledged ones are.
    let delivered = |id: &str| {
        app.received()
            .iter()
            .any(|r| r.header("x-delivery") == Some(id))
    };
    support::eventually(
        "both acknowledged webhooks delivered",
        Duration::from_secs(10),
        async || delivered("before") && delivered("after"),
    )
    .await;
}
