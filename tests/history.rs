//! The delivery history: every delivered message stays findable (by tenant, event id,
//! `Idempotency-Key`, a page at a time) across restarts and on every replica, for its
//! retention, within its size.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use support::{acme_endpoint, cli, eventually, Gateway, GatewayBuilder, TestApp, TestRedis};

const WITHIN: Duration = Duration::from_secs(10);

fn sending(receiver: &TestApp, history: &str) -> GatewayBuilder {
    Gateway::builder("http://127.0.0.1:9")
        .endpoints(&acme_endpoint(receiver, "/hooks", ""))
        .outbound(&format!(
            "  allow_private_destinations: [127.0.0.0/8]\n  history: {{ {history} }}\n"
        ))
}

/// POSTs a message to `acme` with an Idempotency-Key; its delivery id.
async fn send(gateway: &Gateway, body: &str, key: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("http://{}/acme", gateway.outbound))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    answer["delivery_id"].as_str().unwrap().to_string()
}

async fn delivered(gateway: &Gateway, query: &str) -> Value {
    let (status, page) = gateway
        .admin(
            Method::GET,
            &format!("/admin/deliveries?state=delivered&{query}"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// Sends 25 messages and an event for two tenants, and checks what the history answers.
async fn history_answers(gateway: &Gateway, receiver: &TestApp) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..25 {
        sent.push(send(gateway, &format!("{{\"n\":{i}}}"), &format!("order-{i}")).await);
    }
    gateway.subscribe(json!({ "tenant": "acme-corp", "url": format!("{}/sub", receiver.url()), "event_types": ["*"] })).await;
    let (status, event) = gateway
        .publish(
            &[
                ("Hookgate-Event-Type", "order.paid"),
                ("Hookgate-Tenant", "acme-corp"),
            ],
            "{\"order\":1}",
        )
        .await;
    assert_eq!(status, 202, "{event}");
    receiver.wait_for(26).await;
    eventually("all 26 are in the history", WITHIN, async || {
        delivered(gateway, "limit=1000").await["deliveries"]
            .as_array()
            .unwrap()
            .len()
            == 26
    })
    .await;
    // Paged, newest first, without gaps or repeats.
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = delivered(gateway, &format!("limit=10{after}")).await;
        paged.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged.len(), 26, "{paged:?}");
    let all = ids(&delivered(gateway, "limit=1000").await);
    assert_eq!(paged, all);
    let times: Vec<u64> = delivered(gateway, "limit=1000").await["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivered_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    // Found by event id, tenant and Idempotency-Key; shown with its payload.
    let event_id = event["event_id"].as_str().unwrap();
    let by_event = delivered(gateway, &format!("event_id={event_id}")).await;
    assert_eq!(
        ids(&by_event),
        [event["deliveries"][0]["delivery_id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&delivered(gateway, "tenant=acme-corp").await),
        ids(&by_event)
    );
    let (_, anywhere) = gateway
        .admin(
            Method::GET,
            &format!("/admin/deliveries?event_id={event_id}"),
        )
        .await;
    assert_eq!(
        ids(&anywhere),
        ids(&by_event),
        "a search without a state looks in the history too"
    );
    assert_eq!(
        ids(&delivered(gateway, "idempotency_key=order-7").await),
        [sent[7].clone()]
    );
    let (status, shown) = gateway
        .admin(Method::GET, &format!("/admin/deliveries/{}", sent[7]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (shown["state"].as_str(), shown["payload"].as_str()),
        (Some("delivered"), Some("{\"n\":7}"))
    );
    assert_eq!(shown["attempts"][0]["status"], 200);
    let (ok, printed) = cli(
        gateway,
        &[
            "deliveries",
            "list",
            "--state",
            "delivered",
            "--idempotency-key",
            "order-7",
        ],
    );
    assert!(
        ok && printed.contains(&sent[7]) && !printed.contains(&sent[8]),
        "{printed}"
    );
    let (ok, printed) = cli(
        gateway,
        &["deliveries", "list", "--state", "delivered", "--limit", "5"],
    );
    assert!(ok && printed.contains("more: --after "), "{printed}");
    let (status, bad) = gateway
        .admin(
            Method::GET,
            "/admin/deliveries?state=delivered&after=nonsense",
        )
        .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_cursor"))
    );
    sent
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_messages_are_found_paged_and_survive_a_restart() {
    let receiver = TestApp::start().await;
    let store = tempfile::tempdir().unwrap();
    let gateway = sending(&receiver, "").store_dir(store.path()).start().await;
    let sent = history_answers(&gateway, &receiver).await;
    let mut gateway = gateway;
    gateway.terminate(Duration::from_secs(10));
    let again = sending(&receiver, "").store_dir(store.path()).start().await;
    let (status, shown) = again
        .admin(Method::GET, &format!("/admin/deliveries/{}", sent[3]))
        .await;
    assert_eq!(
        (status, shown["payload"].as_str()),
        (200, Some("{\"n\":3}")),
        "{shown}"
    );
    assert_eq!(ids(&delivered(&again, "limit=1000").await).len(), 26);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_every_replica_finds_what_either_delivered() {
    let receiver = TestApp::start().await;
    let redis = TestRedis::start();
    let prefix = format!("hookgate-test:{}:", hookgate::ids::new_delivery_id());
    let one = sending(&receiver, "")
        .redis(&redis.url, &prefix)
        .start()
        .await;
    let two = sending(&receiver, "")
        .redis(&redis.url, &prefix)
        .start()
        .await;
    history_answers(&one, &receiver).await;
    assert_eq!(ids(&delivered(&two, "limit=1000").await).len(), 26);
    let id = send(&two, "{\"from\":\"two\"}", "two-1").await;
    eventually("one finds what two delivered", WITHIN, async || {
        one.admin(Method::GET, &format!("/admin/deliveries/{id}"))
            .await
            .0
            == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_expire_after_their_retention_and_payloads_sooner() {
    let receiver = TestApp::start().await;
    let gateway = sending(&receiver, "retention: 3s, payload_retention: 1s")
        .start()
        .await;
    let id = send(&gateway, "{\"short\":\"lived\"}", "k").await;
    receiver.wait_for(1).await;
    eventually("it is kept, with its payload", WITHIN, async || {
        let (_, shown) = gateway
            .admin(Method::GET, &format!("/admin/deliveries/{id}"))
            .await;
        shown["payload"] == "{\"short\":\"lived\"}"
    })
    .await;
    eventually("its payload goes first", WITHIN, async || {
        let (status, shown) = gateway
            .admin(Method::GET, &format!("/admin/deliveries/{id}"))
            .await;
        status == 200 && shown["payload"].is_null() && shown["payload_bytes"] == 17
    })
    .await;
    eventually("then the row", WITHIN, async || {
        gateway
            .admin(Method::GET, &format!("/admin/deliveries/{id}"))
            .await
            .0
            == 404
    })
    .await;
    assert!(gateway
        .metrics()
        .await
        .contains("hookgate_history_rows_total{outcome=\"swept\"} 1"));
}

/// Sends 100 messages of about 1 KB through `gateway` (whose history holds 40 KB): the
/// newest stay, the oldest go, and not all of them.
async fn outgrows_max_bytes(gateway: &Gateway, receiver: &TestApp) {
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1000));
    let mut sent = Vec::new();
    for i in 0..100 {
        sent.push(send(gateway, &body, &format!("k{i}")).await);
    }
    receiver.wait_for(100).await;
    eventually("the history shrinks under its bound", WITHIN, async || {
        let kept = ids(&delivered(gateway, "limit=1000").await);
        (5..60).contains(&kept.len()) && kept.contains(sent.last().unwrap())
    })
    .await;
    let kept = ids(&delivered(gateway, "limit=1000").await);
    assert!(!kept.contains(&sent[0]), "the oldest went first");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oldest_rows_go_when_the_history_outgrows_max_bytes() {
    let receiver = TestApp::start().await;
    let history = "retention: 1h, payload_retention: 1h, max_bytes: 40KB";
    let gateway = sending(&receiver, history).start().await;
    outgrows_max_bytes(&gateway, &receiver).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_the_oldest_rows_go_when_the_history_outgrows_max_bytes() {
    let receiver = TestApp::start().await;
    let redis = TestRedis::start();
    let prefix = format!("hookgate-test:{}:", hookgate::ids::new_delivery_id());
    let history = "retention: 1h, payload_retention: 1h, max_bytes: 40KB";
    let gateway = sending(&receiver, history)
        .redis(&redis.url, &prefix)
        .start()
        .await;
    outgrows_max_bytes(&gateway, &receiver).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_messages_are_sent_again_in_a_job_with_their_ids_or_new_ones() {
    let receiver = TestApp::start().await;
    let gateway = sending(&receiver, "").start().await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(send(&gateway, &format!("{{\"n\":{i}}}"), &format!("k{i}")).await);
    }
    receiver.wait_for(30).await;
    eventually("all 30 are in the history", WITHIN, async || {
        ids(&delivered(&gateway, "limit=1000").await).len() == 30
    })
    .await;
    let received_ids = |from: usize| -> Vec<String> {
        let mut ids: Vec<String> = receiver.received()[from..]
            .iter()
            .map(|r| r.verified_id("rejento", "acme-secret").unwrap())
            .collect();
        ids.sort();
        ids
    };
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(received_ids(0), expected);

    // The same ids again: receivers dedupe them.
    let body = json!({ "endpoint": "acme", "states": ["delivered"] });
    let (status, answer) = gateway
        .admin_json(Method::POST, "/admin/deliveries/replay", &body)
        .await;
    assert_eq!(
        (status, answer["replayed"].as_u64()),
        (200, Some(30)),
        "{answer}"
    );
    assert_eq!(answer["job"]["state"], "done");
    receiver.wait_for(60).await;
    assert_eq!(received_ids(30), expected, "the same delivery ids");
    // Fresh ones, for receivers that dedupe too well.
    let body = json!({ "endpoint": "acme", "states": ["delivered"], "new_ids": true, "since": 0 });
    let (status, answer) = gateway
        .admin_json(Method::POST, "/admin/deliveries/replay", &body)
        .await;
    assert_eq!(
        (status, answer["replayed"].as_u64()),
        (200, Some(30)),
        "{answer}"
    );
    receiver.wait_for(90).await;
    let fresh = received_ids(60);
    assert!(fresh.iter().all(|id| !expected.contains(id)), "{fresh:?}");
    let job = answer["job"]["id"].as_str().unwrap();
    let (status, shown) = gateway
        .admin(Method::GET, &format!("/admin/jobs/{job}"))
        .await;
    assert_eq!(
        (status, shown["state"].as_str(), shown["new_ids"].as_bool()),
        (200, Some("done"), Some(true))
    );
    let (_, jobs) = gateway.admin(Method::GET, "/admin/jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(jobs["jobs"][0]["id"], job, "newest first");
    let (ok, printed) = cli(&gateway, &["jobs", "list"]);
    assert!(
        ok && printed.contains(job) && printed.contains("done"),
        "{printed}"
    );
    let (ok, printed) = cli(&gateway, &["jobs", "show", job]);
    assert!(
        ok && printed.contains(job) && printed.lines().count() == 2,
        "{printed}"
    );
    let (status, answer) = gateway
        .admin(Method::POST, "/admin/jobs/job_nope/cancel")
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("job_not_found"))
    );
    let body = json!({ "endpoint": "acme", "states": ["dead"], "new_ids": true });
    let (status, answer) = gateway
        .admin_json(Method::POST, "/admin/deliveries/replay", &body)
        .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("new_ids")));
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_expire_after_dead_letter_ttl() {
    let receiver = TestApp::start().await;
    receiver.respond_with(503, Duration::ZERO);
    let gateway = Gateway::builder("http://127.0.0.1:9")
        .endpoints(&acme_endpoint(
            &receiver,
            "/hooks",
            "retry: { schedule: [1s], max_attempts: 1 }",
        ))
        .outbound("  allow_private_destinations: [127.0.0.0/8]\n  dead_letter_ttl: 2s\n")
        .start()
        .await;
    let id = send(&gateway, "{}", "dies").await;
    let dead = async || {
        let (_, list) = gateway
            .admin(Method::GET, "/admin/deliveries?state=dead")
            .await;
        ids(&list).contains(&id)
    };
    eventually("it is a dead letter", WITHIN, dead).await;
    eventually("then it expires", WITHIN, async || !dead().await).await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("hookgate_outbound_dead_letters_expired_total 1"),
        "{metrics}"
    );
    let (ok, printed) = support::cli(&gateway, &["check", "-c", gateway.config.to_str().unwrap()]);
    assert!(ok && printed.contains("dead letters 2s"), "{printed}");
}
