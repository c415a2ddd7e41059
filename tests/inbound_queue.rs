//! `deliver: queue`: verified webhooks are stored, acknowledged, and delivered to the app
//! once it is up, each once, byte for byte, with the provider's signature headers (checked
//! here with Python's `hmac`, not hookgate's code).

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use futures_util::future::join_all;
use support::{eventually, free_port, post, sign, Gateway, TestApp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn route(extra: &str) -> String {
    format!(
        "    - {{ name: queued, path: /hooks/queued, verify: {{ scheme: standard-webhooks, secrets: [{SECRET}] }}, dedupe: {{ id: scheme }}, deliver: queue{extra} }}\n"
    )
}

/// Posts a signed webhook; the status and the answer.
async fn send(
    client: &reqwest::Client,
    gateway: &Gateway,
    id: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let headers = sign("standard-webhooks", SECRET, id, body, None);
    let response = post(client, &gateway.url("/hooks/queued"), &headers, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Checks every request's Standard Webhooks signature with Python's `hmac`; the ids whose
/// signature does not verify.
fn python_rejects(requests: &[support::Received]) -> Vec<String> {
    let cases: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.header("webhook-id"),
                "timestamp": r.header("webhook-timestamp"),
                "signature": r.header("webhook-signature"),
                "body": String::from_utf8_lossy(&r.body),
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = "import base64, hashlib, hmac, json, sys\n\
        key = base64.b64decode(sys.argv[1].removeprefix('whsec_'))\n\
        for c in json.load(open(sys.argv[2])):\n\
        \x20   signed = f\"{c['id']}.{c['timestamp']}.{c['body']}\".encode()\n\
        \x20   mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()\n\
        \x20   if ('v1,' + mac) not in (c['signature'] or '').split(' '):\n\
        \x20       print(c['id'])\n";
    let output = Command::new("python3")
        .args(["-c", script, SECRET, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_sent_while_the_app_is_down_arrive_once_it_is_back() {
    let app_addr = format!("127.0.0.1:{}", free_port());
    let gateway = Gateway::builder(format!("http://{app_addr}"))
        .routes(&route(
            ", queue: { retry: { schedule: [200ms], max_attempts: 100 }, circuit: { failures: 5, pause: 500ms } }",
        ))
        .start()
        .await;
    let client = reqwest::Client::new();
    const COUNT: usize = 1000;
    let bodies: Vec<(String, Vec<u8>)> = (0..COUNT)
        .map(|i| {
            let body = format!(
                r#"{{"type":"invoice.paid","data":{{"n":{i},"note":"caf\u00e9 \\u2603"}}}}"#
            );
            (format!("msg_{i:04}"), body.into_bytes())
        })
        .collect();
    let mut acknowledged = Vec::new();
    for chunk in bodies.chunks(50) {
        let answers = join_all(
            chunk
                .iter()
                .map(|(id, body)| send(&client, &gateway, id, body)),
        )
        .await;
        for (status, answer) in answers {
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["queued"], true);
            acknowledged.push(answer["delivery_id"].as_str().unwrap().to_string());
        }
    }
    // A provider's retry of a queued webhook is a duplicate; a forged one is refused.
    let (status, _) = send(&client, &gateway, "msg_0007", &bodies[7].1).await;
    assert_eq!(status, 200, "a duplicate is answered as delivered");
    let forged = post(
        &client,
        &gateway.url("/hooks/queued"),
        &sign(
            "standard-webhooks",
            "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB",
            "msg_x",
            b"{}",
            None,
        ),
        b"{}",
    )
    .await;
    assert_eq!(forged.status().as_u16(), 401);

    let (status, listed) = gateway
        .admin(
            reqwest::Method::GET,
            "/admin/deliveries?route=queued&limit=1000",
        )
        .await;
    assert_eq!(status, 200, "{listed}");

    let app = TestApp::start_at(&app_addr).await;
    eventually(
        "every queued webhook reaches the app",
        Duration::from_secs(60),
        async || app.received().len() >= COUNT,
    )
    .await;
    // Nothing more arrives: each once.
    support::stays(
        "no webhook arrives twice",
        Duration::from_millis(500),
        async || app.received().len() == COUNT,
    )
    .await;
    let received = app.received();
    let sent: HashMap<&str, &[u8]> = bodies
        .iter()
        .map(|(id, b)| (id.as_str(), b.as_slice()))
        .collect();
    let mut delivery_ids: Vec<&str> = Vec::new();
    for request in &received {
        let id = request.header("webhook-id").unwrap();
        assert_eq!(request.body.as_ref(), sent[id], "{id}: the body changed");
        assert_eq!(request.uri, "/hooks/queued");
        assert_eq!(request.header("hookgate-route"), Some("queued"));
        assert_eq!(
            request.header("hookgate-verified"),
            Some("standard-webhooks")
        );
        let attempt: u32 = request.header("hookgate-attempt").unwrap().parse().unwrap();
        assert!(attempt >= 1);
        let received_at = request.header("hookgate-received-at").unwrap();
        assert!(
            received_at.ends_with('Z') && received_at.contains('T'),
            "{received_at}"
        );
        delivery_ids.push(request.header("hookgate-delivery-id").unwrap());
    }
    delivery_ids.sort();
    delivery_ids.dedup();
    assert_eq!(delivery_ids.len(), COUNT);
    acknowledged.sort();
    assert_eq!(
        delivery_ids,
        acknowledged.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(python_rejects(&received), Vec::<String>::new());

    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("hookgate_inbound_requests_total{route=\"queued\",outcome=\"queued\",status=\"200\"} 1000"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_answer_decides_retry_dead_or_done() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes(&route(
            ", ack_status: 202, queue: { retry: { schedule: [100ms], max_attempts: 3 } }",
        ))
        .start()
        .await;
    let client = reqwest::Client::new();

    // 503 then 200: retried, delivered on the second attempt.
    app.respond_with(503, Duration::ZERO);
    let (status, answer) = send(&client, &gateway, "msg_retry", b"{\"n\":1}").await;
    assert_eq!(status, 202, "ack_status");
    let id = answer["delivery_id"].as_str().unwrap().to_string();
    // The provider's retry of a stored webhook: a duplicate, answered with the same status.
    let (status, again) = send(&client, &gateway, "msg_retry", b"{\"n\":1}").await;
    assert_eq!(
        (status, &again["duplicate"]),
        (202, &serde_json::json!(true))
    );
    app.wait_for(1).await;
    app.respond_with(200, Duration::ZERO);
    app.wait_for(2).await;
    let attempts: Vec<String> = app
        .received()
        .iter()
        .map(|r| r.header("hookgate-attempt").unwrap().to_string())
        .collect();
    assert_eq!(attempts, ["1", "2"]);

    // A 422 is final: the webhook goes dead at once, and stays listed for replay.
    app.respond_with(422, Duration::ZERO);
    let (_, answer) = send(&client, &gateway, "msg_dead", b"{\"n\":2}").await;
    let dead = answer["delivery_id"].as_str().unwrap().to_string();
    eventually(
        "the 422 makes it dead",
        Duration::from_secs(10),
        async || {
            let (_, listed) = gateway
                .admin(
                    reqwest::Method::GET,
                    "/admin/deliveries?route=queued&state=dead",
                )
                .await;
            listed.to_string().contains(&dead)
        },
    )
    .await;
    support::stays(
        "a dead webhook is not attempted again",
        Duration::from_millis(400),
        async || app.received().len() == 3,
    )
    .await;
    assert!(!id.is_empty());
    // Its page: the request as stored, signatures masked, the app's answer kept.
    let (status, shown) = gateway
        .admin(reqwest::Method::GET, &format!("/admin/deliveries/{dead}"))
        .await;
    assert_eq!(status, 200, "{shown}");
    let headers = shown["inbound"]["headers"].as_array().unwrap();
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_string())
    };
    assert_eq!(value("webhook-id").as_deref(), Some("msg_dead"));
    assert_eq!(value("webhook-signature").as_deref(), Some("[masked]"));
    assert_eq!(shown["attempts"][0]["status"], 422);
    assert_eq!(shown["state"], "dead");
}

#[test]
fn check_refuses_queue_settings_on_a_proxy_route() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(
        &file,
        "inbound:\n  listen: 127.0.0.1:0\n  upstream: http://127.0.0.1:1\n  routes:\n    - { name: r, path: /r, verify: none, ack_status: 202 }\n    - { name: q, path: /q, verify: none, deliver: queue, ack_status: 500 }\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "-c", file.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success());
    assert!(
        said.contains("routes[0].ack_status: only applies with deliver: queue"),
        "{said}"
    );
    assert!(said.contains("routes[1].ack_status"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_route_stores_and_a_resumed_one_sends_its_backlog() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).routes(&route("")).start().await;
    let client = reqwest::Client::new();
    let (ok, said) = support::cli(&gateway, &["routes", "pause", "queued"]);
    assert!(ok, "{said}");
    for i in 0..5 {
        let (status, _) = send(&client, &gateway, &format!("msg_p{i}"), b"{}").await;
        assert_eq!(status, 200);
    }
    support::stays(
        "a paused route sends nothing",
        Duration::from_millis(1500),
        async || app.received().is_empty(),
    )
    .await;
    let ready: serde_json::Value = client
        .get(gateway.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["paused_routes"], serde_json::json!(["queued"]));
    gateway
        .metrics_eventually("hookgate_inbound_route_paused{route=\"queued\"} 1")
        .await;
    gateway
        .metrics_eventually("hookgate_inbound_queue_depth{route=\"queued\",state=\"pending\"} 5")
        .await;
    let (ok, said) = support::cli(&gateway, &["routes", "list"]);
    assert!(
        ok && said.contains("queued") && said.contains("paused"),
        "{said}"
    );

    let (status, answer) = gateway
        .admin(reqwest::Method::POST, "/admin/routes/queued/resume")
        .await;
    assert_eq!(status, 200, "{answer}");
    app.wait_for(5).await;
    let (status, answer) = gateway
        .admin(reqwest::Method::POST, "/admin/routes/nope/pause")
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("route_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_webhooks_are_replayed_by_time_window() {
    let app = TestApp::start().await;
    app.respond_with(422, Duration::ZERO);
    let gateway = Gateway::builder(app.url()).routes(&route("")).start().await;
    let client = reqwest::Client::new();
    for i in 0..3 {
        send(&client, &gateway, &format!("msg_early{i}"), b"{}").await;
    }
    app.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let boundary = chrono::DateTime::from_timestamp_millis(hookgate::clock::now_ms() as i64)
        .unwrap()
        .to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..2 {
        send(&client, &gateway, &format!("msg_late{i}"), b"{}").await;
    }
    app.wait_for(5).await;
    eventually("all five are dead", Duration::from_secs(10), async || {
        let (_, listed) = gateway
            .admin(
                reqwest::Method::GET,
                "/admin/deliveries?route=queued&state=dead",
            )
            .await;
        listed["deliveries"].as_array().map_or(0, Vec::len) == 5
    })
    .await;

    app.respond_with(200, Duration::ZERO);
    let (status, answer) = gateway
        .admin_json(
            reqwest::Method::POST,
            "/admin/deliveries/replay",
            &serde_json::json!({"route": "queued", "since": boundary, "states": ["dead"]}),
        )
        .await;
    assert_eq!(
        (status, answer["replayed"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    app.wait_for(7).await;
    let replayed: Vec<String> = app.received()[5..]
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert!(
        replayed.iter().all(|id| id.starts_with("msg_late")),
        "{replayed:?}"
    );
    let (status, answer) = gateway
        .admin_json(
            reqwest::Method::POST,
            "/admin/deliveries/replay",
            &serde_json::json!({"route": "queued", "since": "yesterday"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_app_opens_the_circuit_and_a_full_queue_answers_503() {
    let app_addr = format!("127.0.0.1:{}", free_port());
    let gateway = Gateway::builder(format!("http://{app_addr}"))
        .routes(&route(
            ", queue: { retry: { schedule: [50ms], max_attempts: 100 }, circuit: { failures: 3, pause: 1h }, max_depth: 8 }",
        ))
        .start()
        .await;
    let client = reqwest::Client::new();
    for i in 0..8 {
        let (status, answer) = send(&client, &gateway, &format!("msg_c{i}"), b"{}").await;
        assert_eq!(status, 200, "{answer}");
    }
    // The ninth finds the route's queue full: refused, and so not stored.
    let (status, answer) = send(&client, &gateway, "msg_c8", b"{}").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("queue_unavailable"))
    );

    // Three failed attempts open the circuit: the backlog waits without spending attempts.
    eventually("the circuit opens", Duration::from_secs(10), async || {
        let (_, routes) = gateway.admin(reqwest::Method::GET, "/admin/routes").await;
        routes["routes"][0]["health"]["circuit"] == "open"
    })
    .await;
    let attempts = || async {
        let (_, listed) = gateway
            .admin(reqwest::Method::GET, "/admin/deliveries?route=queued")
            .await;
        listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["attempts"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
    };
    // Attempts already under way when it opened are recorded as they finish.
    let mut spent = attempts().await;
    eventually(
        "the attempts under way recorded",
        Duration::from_secs(5),
        async || {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = attempts().await;
            std::mem::replace(&mut spent, now) == now
        },
    )
    .await;
    assert!(
        spent < 8 * 3,
        "{spent} attempts: the circuit did not hold the backlog"
    );
    support::stays(
        "an open circuit spends no attempts",
        Duration::from_millis(600),
        async || attempts().await == spent,
    )
    .await;
    let (_, listed) = gateway
        .admin(
            reqwest::Method::GET,
            "/admin/deliveries?route=queued&state=dead",
        )
        .await;
    assert_eq!(listed["deliveries"].as_array().map(Vec::len), Some(0));
}

/// The webhook ids the app got for each `x-key`, attempts included, in arrival order.
fn lines(received: &[support::Received]) -> HashMap<String, Vec<String>> {
    let mut lines: HashMap<String, Vec<String>> = HashMap::new();
    for r in received {
        let key = r.header("x-key").unwrap_or("").to_string();
        lines
            .entry(key)
            .or_default()
            .push(r.header("webhook-id").unwrap().to_string());
    }
    lines
}

/// Distinct ids the app got.
fn distinct(received: &[support::Received]) -> usize {
    let ids: std::collections::HashSet<&str> = received
        .iter()
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    ids.len()
}

/// Each line's ids never go back: `[a1, a1, a2]` is in order, `[a1, a2, a1]` is not.
fn assert_in_order(lines: &HashMap<String, Vec<String>>) {
    for (key, ids) in lines {
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, &sorted, "line {key:?} out of order");
    }
}

async fn send_keyed(client: &reqwest::Client, gateway: &Gateway, key: &str, n: usize) -> u16 {
    let id = format!("msg_{key}{n:02}");
    let body = format!("{{\"n\":{n}}}");
    let mut headers = sign("standard-webhooks", SECRET, &id, body.as_bytes(), None);
    headers.push(("x-key".to_string(), key.to_string()));
    post(
        client,
        &gateway.url("/hooks/queued"),
        &headers,
        body.as_bytes(),
    )
    .await
    .status()
    .as_u16()
}

const ORDERED: &str = ", queue: { order: \"header:x-key\", timeout: 1s, retry: { schedule: [100ms], max_attempts: 100 }, circuit: { failures: 1000 } }";

#[tokio::test(flavor = "multi_thread")]
async fn order_keeps_each_keys_line_across_a_failed_attempt_and_a_restart() {
    // A failing first attempt: the app answers 503 until it has seen one request.
    let app = TestApp::start().await;
    app.respond_with(503, Duration::ZERO);
    let store = tempfile::tempdir().unwrap();
    let gateway = Gateway::builder(app.url())
        .routes(&route(ORDERED))
        .store_dir(store.path())
        .start()
        .await;
    let client = reqwest::Client::new();
    for n in 0..6 {
        for key in ["a", "b", "c"] {
            assert_eq!(send_keyed(&client, &gateway, key, n).await, 200);
        }
    }
    app.wait_for(1).await;
    app.respond_with(200, Duration::ZERO);
    eventually("all 18 delivered", Duration::from_secs(20), async || {
        distinct(&app.received()) == 18
    })
    .await;
    assert_in_order(&lines(&app.received()));
    drop(gateway);

    // A restart: stored while the app is down, killed, started again, delivered in order.
    let app_addr = format!("127.0.0.1:{}", free_port());
    let start = || {
        Gateway::builder(format!("http://{app_addr}"))
            .routes(&route(ORDERED))
            .store_dir(store.path())
            .start()
    };
    let mut gateway = start().await;
    for n in 0..8 {
        assert_eq!(send_keyed(&client, &gateway, "d", n).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.kill();
    let _gateway = start().await;
    let app = TestApp::start_at(&app_addr).await;
    eventually(
        "the line delivered after the restart",
        Duration::from_secs(20),
        async || distinct(&app.received()) == 8,
    )
    .await;
    assert_in_order(&lines(&app.received()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_key_that_cannot_be_read_is_refused_not_taken_as_absent() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes(&route(ORDERED))
        .start()
        .await;
    let client = reqwest::Client::new();
    let body = b"{}";
    let sent = |id: &str, keys: &[&str]| {
        let mut headers = sign("standard-webhooks", SECRET, id, body, None);
        headers.extend(keys.iter().map(|k| ("x-key".to_string(), k.to_string())));
        let client = client.clone();
        let url = gateway.url("/hooks/queued");
        async move {
            let answer = post(&client, &url, &headers, body).await;
            let status = answer.status().as_u16();
            (status, answer.json::<serde_json::Value>().await.unwrap())
        }
    };
    for (id, keys) in [("msg_k1", &["a", "b"][..]), ("msg_k2", &[" "][..])] {
        let (status, answer) = sent(id, keys).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_order_key")),
            "{keys:?}"
        );
    }
    // Absent: not in a line, stored and delivered.
    assert_eq!(sent("msg_k3", &[]).await.0, 200);
    app.wait_for(1).await;
    assert_eq!(app.received()[0].header("webhook-id"), Some("msg_k3"));
}
