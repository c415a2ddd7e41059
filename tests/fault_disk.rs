//! Finding 4 of the hardening review and the fault-injection suite's disk scenarios. On a
//! full disk hookgate reports itself not ready, refuses what it cannot store, recovers by
//! itself when space returns, and loses nothing it answered: every 202 is delivered and
//! every delivered id is still known after a restart. On a read-only store directory it
//! does not start, and says why.
//!
//! The store lives on a small tmpfs mounted in a mount namespace of the test's own
//! (`unshare`), so filling it or making it read-only touches nothing else on the machine.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{eventually, Gateway, TestApp};

const IN_NAMESPACE: &str = "HOOKGATE_TEST_IN_MOUNT_NS";
const ROUTES: &str =
    "    - { name: test, path: /hooks/test, verify: none, dedupe: { id: \"header:X-Delivery\" } }\n";

/// Re-runs `test` in a new user and mount namespace; true when this is that run. One such
/// run at a time: each is a process of its own whose test ports are counted from its pid,
/// and two started together (adjacent pids) would hand out the same ports.
fn in_own_mount_namespace(test: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return true;
    }
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let status = Command::new("unshare")
        .args(["--map-root-user", "--mount", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(IN_NAMESPACE, "1")
        .status()
        .expect("unshare (util-linux) runs this test in its own mount namespace");
    assert!(status.success(), "{test} failed in its namespace");
    false
}

/// Writes to `path` until the file system is full.
fn fill(path: &std::path::Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

async fn ready(gateway: &Gateway) -> (u16, String) {
    let answer = reqwest::get(gateway.admin_url("/readyz")).await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// Mounts a tmpfs of `size` on a new temporary directory.
fn small_disk(size: &str) -> tempfile::TempDir {
    let disk = tempfile::tempdir().unwrap();
    mount(
        &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
        disk.path(),
    );
    disk
}

fn mount(args: &[&str], path: &std::path::Path) {
    let status = Command::new("mount").args(args).arg(path).status().unwrap();
    assert!(status.success(), "mount {args:?} {}", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_reported_refused_and_recovered_without_losing_an_answer() {
    if !in_own_mount_namespace(
        "a_full_disk_is_reported_refused_and_recovered_without_losing_an_answer",
    ) {
        return;
    }
    let disk = small_disk("6m");
    let store = disk.path().join("store");
    std::fs::create_dir(&store).unwrap();

    let app = TestApp::start().await;
    let endpoints = format!(
        "    - {{ name: acme, url: \"{}/hooks/acme\", sign: {{ scheme: rejento, secret: s }} }}\n",
        app.url()
    );
    let start = || {
        Gateway::builder(app.url())
            .routes(ROUTES)
            .endpoints(&endpoints)
            .store_dir(&store)
            .start()
    };
    let mut gateway = start().await;
    let client = reqwest::Client::new();
    let inbound = |id: String| {
        client
            .post(gateway.url("/hooks/test"))
            .header("X-Delivery", id)
            .body("{}")
            .send()
    };
    let message = vec![b'x'; 16 * 1024];
    let outbound = || {
        client
            .post(format!("http://{}/acme", gateway.outbound))
            .header("Content-Type", "application/json")
            .body(format!(
                "{{\"pad\":\"{}\"}}",
                String::from_utf8_lossy(&message)
            ))
            .send()
    };

    // One of each first, so the files and connections a normal run holds are open.
    assert_eq!(inbound("warm-up".into()).await.unwrap().status(), 200);
    assert_eq!(outbound().await.unwrap().status(), 202);
    let mut accepted = 1;
    let baseline = gateway.resources();

    let filler = disk.path().join("filler");
    fill(&filler);
    // Inbound deliveries go on from memory; their ids are written when there is room.
    for i in 0..50 {
        assert_eq!(inbound(format!("full-{i}")).await.unwrap().status(), 200);
    }
    // Outbound messages are accepted while redb still has room inside its file, then refused.
    let mut refused = false;
    for _ in 0..400 {
        let answer = outbound().await.unwrap();
        match answer.status().as_u16() {
            202 => accepted += 1,
            503 => {
                let json: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(json["error"], "queue_unavailable");
                refused = true;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused, "the queue never filled the disk");
    eventually("not ready", Duration::from_secs(5), async || {
        ready(&gateway).await.0 == 503
    })
    .await;
    let (_, why) = ready(&gateway).await;
    assert!(why.contains("store"), "{why}");
    assert!(gateway.metrics().await.contains("hookgate_store_up 0"));

    // Space returns: hookgate recovers on its own.
    std::fs::remove_file(&filler).unwrap();
    eventually("ready again", Duration::from_secs(10), async || {
        ready(&gateway).await.0 == 200
    })
    .await;
    assert_eq!(outbound().await.unwrap().status(), 202);
    accepted += 1;
    eventually(
        "every accepted message delivered",
        Duration::from_secs(20),
        async || {
            app.received()
                .iter()
                .filter(|r| r.uri == "/hooks/acme")
                .count()
                >= accepted
        },
    )
    .await;
    eventually("the store up", Duration::from_secs(5), async || {
        gateway.metrics().await.contains("hookgate_store_up 1")
    })
    .await;
    // Every reopen of a broken file closed the handle it replaced.
    let after = gateway.resources();
    println!("disk full, then space back: (descriptors, RSS KiB) {baseline:?} -> {after:?}");
    assert!(
        after.0 <= baseline.0 + 4,
        "descriptors {baseline:?} -> {after:?}"
    );

    // After a crash and a restart, the ids delivered while the disk was full are known.
    gateway.kill();
    gateway = start().await;
    let before = app.received().len();
    for i in 0..50 {
        let answer = client
            .post(gateway.url("/hooks/test"))
            .header("X-Delivery", format!("full-{i}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer
                .headers()
                .get("hookgate-duplicate")
                .map(|v| v.to_str().unwrap()),
            Some("true"),
            "full-{i}"
        );
    }
    assert_eq!(app.received().len(), before);
    let delivered = app
        .received()
        .iter()
        .filter(|r| r.uri == "/hooks/acme")
        .count();
    assert_eq!(delivered, accepted, "each accepted message once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_store_directory_stops_the_start_with_its_reason() {
    if !in_own_mount_namespace("a_read_only_store_directory_stops_the_start_with_its_reason") {
        return;
    }
    // Files opened before a directory turns read-only keep taking writes; a start on a
    // read-only directory is where an operator meets it.
    let disk = small_disk("1m");
    let store = disk.path().join("store");
    std::fs::create_dir(&store).unwrap();
    mount(&["--bind", store.to_str().unwrap()], &store);
    mount(&["-o", "remount,bind,ro"], &store);
    let config = disk.path().join("ro.yaml");
    std::fs::write(
        &config,
        format!(
            "store: {{ kind: embedded, path: \"{}\" }}\ninbound:\n  listen: 127.0.0.1:{}\n  upstream: http://127.0.0.1:9\n  routes:\n{ROUTES}",
            store.display(),
            support::free_port(),
        ),
    )
    .unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(log.contains("dedupe"), "{log}");
}

/// `deliver: queue` on a full disk: webhooks the queue cannot store get `503
/// queue_unavailable`, never a 200; once space returns they are taken again, and every one
/// acknowledged reaches the app.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_queued_webhooks_and_loses_no_acknowledged_one() {
    if !in_own_mount_namespace("a_full_disk_refuses_queued_webhooks_and_loses_no_acknowledged_one")
    {
        return;
    }
    let disk = small_disk("6m");
    let store = disk.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let app = TestApp::start().await;
    // The app answers 503 until the end, so the webhooks stay stored and fill the disk.
    app.respond_with(503, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: test, path: /hooks/test, verify: none, deliver: queue, queue: { retry: { schedule: [1h], max_attempts: 10 }, circuit: { failures: 1000 } } }\n")
        .store_dir(&store)
        .start()
        .await;
    let client = reqwest::Client::new();
    let pad = "x".repeat(16 * 1024);
    let send = |n: usize| {
        client
            .post(gateway.url("/hooks/test"))
            .header("X-N", n.to_string())
            .body(format!("{{\"n\":{n},\"pad\":\"{pad}\"}}"))
            .send()
    };
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        assert_eq!(send(n).await.unwrap().status(), 200);
        acknowledged.push(n.to_string());
    }
    let filler = disk.path().join("filler");
    fill(&filler);
    let mut refused = false;
    for n in 20..400 {
        let answer = send(n).await.unwrap();
        match answer.status().as_u16() {
            200 => acknowledged.push(n.to_string()),
            503 => {
                let json: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(json["error"], "queue_unavailable");
                refused = true;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused, "the queue never filled the disk");

    std::fs::remove_file(&filler).unwrap();
    eventually("stored again", Duration::from_secs(10), async || {
        let answer = send(1000).await.unwrap();
        answer.status() == 200
    })
    .await;
    acknowledged.push("1000".to_string());
    app.respond_with(200, Duration::ZERO);
    let (status, answer) = gateway
        .admin(
            reqwest::Method::POST,
            "/admin/deliveries/replay?route=test&all=true",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Scheduled retries an hour away: made due now.
    let (status, answer) = gateway
        .admin_json(
            reqwest::Method::POST,
            "/admin/deliveries/replay",
            &serde_json::json!({"route": "test", "states": ["scheduled", "pending"]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    eventually(
        "every acknowledged webhook delivered",
        Duration::from_secs(20),
        async || {
            let arrived: std::collections::HashSet<String> = app
                .received()
                .iter()
                .filter(|r| r.header("hookgate-attempt").is_some())
                .filter_map(|r| r.header("x-n").map(str::to_string))
                .collect();
            acknowledged.iter().all(|n| arrived.contains(n))
        },
    )
    .await;
}
