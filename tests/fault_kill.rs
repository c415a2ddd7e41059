//! The fault-injection suite's crash scenario: hookgate is killed with SIGKILL twenty
//! times while inbound webhooks and outbound messages are flowing. Each restart opens the
//! store cleanly, every outbound message answered 202 is delivered in the end, and a
//! webhook the app answered is known as delivered after the restarts (but for the ids of
//! the dedupe commit in flight at each kill, as documented).

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Gateway, TestApp};

/// Twenty in CI; `HOOKGATE_FAULT_KILLS=200` for a longer run.
fn kills() -> usize {
    std::env::var("HOOKGATE_FAULT_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9s_under_load_lose_no_accepted_message() {
    let app = TestApp::start().await;
    let store = tempfile::tempdir().unwrap();
    let builder = || {
        Gateway::builder(app.url())
            .routes("    - { name: test, path: /hooks/test, verify: none, dedupe: { id: \"header:X-Delivery\" } }\n")
            .endpoints(&format!(
                "    - {{ name: acme, url: \"{}/hooks/acme\", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 50, timeout: 1s }} }}\n",
                app.url()
            ))
            .env("HOOKGATE_RETRY_TIME_SCALE", "0.05")
            .store_dir(store.path())
    };
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let forwarded = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut resources = Vec::new();
    let kills = kills();
    for kill in 0..kills {
        let mut gateway = builder().start().await;
        resources.push(gateway.resources());
        let outbound = format!("http://{}/acme", gateway.outbound);
        let inbound = gateway.url("/hooks/test");
        let mut load = Vec::new();
        for worker in 0..4 {
            let (client, outbound, inbound) = (client.clone(), outbound.clone(), inbound.clone());
            let (accepted, forwarded) = (accepted.clone(), forwarded.clone());
            load.push(tokio::spawn(async move {
                for n in 0.. {
                    let message = client
                        .post(&outbound)
                        .body(format!("{{\"k\":{kill},\"w\":{worker},\"n\":{n}}}"))
                        .send();
                    let Ok(answer) = message.await else { return };
                    if answer.status() == 202 {
                        if let Ok(json) = answer.json::<serde_json::Value>().await {
                            let id = json["delivery_id"].as_str().unwrap_or_default().to_string();
                            accepted.lock().unwrap().push(id);
                        }
                    }
                    let id = format!("in-{kill}-{worker}-{n}");
                    let webhook = client
                        .post(&inbound)
                        .header("X-Delivery", &id)
                        .body("{}")
                        .send();
                    let Ok(answer) = webhook.await else { return };
                    if answer.status() == 200
                        && answer.headers().get("hookgate-duplicate").is_none()
                    {
                        forwarded.lock().unwrap().push(id);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(150 + 25 * (kill as u64 % 8))).await;
        gateway.kill();
        for task in load {
            let _ = task.await;
        }
    }

    // The last start delivers what is left.
    let gateway = builder().start().await;
    let accepted: HashSet<String> = accepted.lock().unwrap().iter().cloned().collect();
    assert!(accepted.len() > 100, "only {} accepted", accepted.len());
    let started = Instant::now();
    loop {
        let delivered: HashSet<String> = app
            .received()
            .iter()
            .filter_map(|r| r.header("x-rejento-delivery-id").map(str::to_string))
            .collect();
        let lost = accepted.difference(&delivered).count();
        if lost == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{lost} of {} accepted messages never delivered",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Delivered webhooks stay delivered across the kills, but for the commit in flight.
    let forwarded = forwarded.lock().unwrap().clone();
    let mut forgotten = 0;
    for id in &forwarded {
        let answer = gateway.deliver(&client, id).await;
        if answer.headers().get("hookgate-duplicate").is_none() {
            forgotten += 1;
        }
    }
    println!(
        "{kills} kills: {} messages accepted, all delivered; {} webhooks forwarded, {forgotten} forgotten; (descriptors, RSS KiB) at each start: {resources:?}",
        accepted.len(),
        forwarded.len()
    );
    assert!(
        forgotten <= kills * 4,
        "{forgotten} of {} delivered ids were forgotten",
        forwarded.len()
    );
}

/// `deliver: queue`: hookgate is killed ten times while the app is down and signed-off
/// webhooks stream in; once the app is back, every webhook answered 2xx reaches it.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9s_while_the_app_is_down_lose_no_queued_webhook() {
    let app_addr = format!("127.0.0.1:{}", support::free_port());
    let store = tempfile::tempdir().unwrap();
    let builder = || {
        Gateway::builder(format!("http://{app_addr}"))
            .routes("    - { name: test, path: /hooks/test, verify: none, dedupe: { id: \"header:X-Delivery\" }, deliver: queue, queue: { retry: { schedule: [200ms], max_attempts: 100, timeout: 1s }, circuit: { failures: 3, pause: 300ms } } }\n")
            .store_dir(store.path())
    };
    let acknowledged = Arc::new(Mutex::new(HashSet::<String>::new()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for kill in 0..10 {
        let mut gateway = builder().start().await;
        let inbound = gateway.url("/hooks/test");
        let mut load = Vec::new();
        for worker in 0..4 {
            let (client, inbound, acknowledged) =
                (client.clone(), inbound.clone(), acknowledged.clone());
            load.push(tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("in-{kill}-{worker}-{n}");
                    let webhook = client
                        .post(&inbound)
                        .header("X-Delivery", &id)
                        .body(format!("{{\"id\":\"{id}\"}}"))
                        .send();
                    let Ok(answer) = webhook.await else { return };
                    if answer.status().is_success() {
                        acknowledged.lock().unwrap().insert(id);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(150 + 25 * (kill as u64 % 8))).await;
        gateway.kill();
        for task in load {
            let _ = task.await;
        }
    }
    let _gateway = builder().start().await;
    let app = TestApp::start_at(&app_addr).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "only {} acknowledged",
        acknowledged.len()
    );
    support::eventually(
        "every acknowledged webhook reaches the app",
        Duration::from_secs(60),
        async || {
            let arrived: HashSet<String> = app
                .received()
                .iter()
                .filter_map(|r| r.header("x-delivery").map(str::to_string))
                .collect();
            acknowledged.is_subset(&arrived)
        },
    )
    .await;
    // Each body arrives as it was sent.
    for request in app.received() {
        let id = request.header("x-delivery").unwrap();
        assert_eq!(
            request.body.as_ref(),
            format!("{{\"id\":\"{id}\"}}").as_bytes()
        );
    }
    println!(
        "10 kills: {} webhooks acknowledged, all delivered ({} requests to the app)",
        acknowledged.len(),
        app.received().len()
    );
}
