//! Several hookgate replicas on one Redis act as one: a delivery id reaches the app once
//! whichever replica gets it, a limit holds for their sum, and the outbound queue is
//! delivered exactly once, survives a replica's kill -9 and a Redis restart.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hookgate::ids::new_delivery_id;
use support::{acme_endpoint, free_port, stays, Gateway, RedisServer, TestApp, TestRedis};

fn prefix() -> String {
    format!("hookgate-test:{}:", new_delivery_id())
}

/// Two replicas of the same config on one Redis prefix.
async fn replicas(
    redis: &TestRedis,
    app: &TestApp,
    prefix: &str,
    routes: &str,
    endpoints: Option<&str>,
) -> [Gateway; 2] {
    let start = || {
        let mut builder = Gateway::builder(app.url())
            .redis(&redis.url, prefix)
            .routes(routes);
        if let Some(endpoints) = endpoints {
            builder = builder.endpoints(endpoints);
        }
        builder.start()
    };
    [start().await, start().await]
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_copies_over_two_replicas_reach_the_app_once() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_millis(300));
    let routes = "    - { name: hooks, path: /hooks/test, verify: none, dedupe: { id: \"header:X-Delivery-Id\", ttl: 1h } }\n";
    let redis = TestRedis::start();
    let gateways = replicas(&redis, &app, &prefix(), routes, None).await;
    let client = reqwest::Client::new();
    let sends = (0..500).map(|i| {
        let (client, url) = (client.clone(), gateways[i % 2].url("/hooks/test"));
        tokio::spawn(async move {
            client
                .post(url)
                .header("X-Delivery-Id", "evt_1")
                .body("{}")
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(app.received().len(), 1, "exactly one copy reached the app");
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for status in statuses {
        *counts.entry(status).or_default() += 1;
    }
    assert!(
        counts.keys().all(|s| [200, 409].contains(s)),
        "forwarded, duplicate (200) or in flight (409): {counts:?}"
    );
    // After the first delivery, a copy at either replica is a duplicate. The delivery is
    // marked done just after the app's answer went back: until then a copy is in flight.
    for gateway in &gateways {
        support::eventually(
            "a copy is answered as a duplicate",
            Duration::from_secs(2),
            async || {
                let response = client
                    .post(gateway.url("/hooks/test"))
                    .header("X-Delivery-Id", "evt_1")
                    .send()
                    .await
                    .unwrap();
                response
                    .headers()
                    .get("hookgate-duplicate")
                    .is_some_and(|v| v == "true")
            },
        )
        .await;
    }
    assert_eq!(app.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_limit_holds_for_the_sum_of_replicas() {
    let app = TestApp::start().await;
    let routes = "    - { name: limited, path: /hooks/test, verify: none, rate_limit: { key: route, limit: 100/min } }\n";
    let redis = TestRedis::start();
    let gateways = replicas(&redis, &app, &prefix(), routes, None).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut admitted = 0;
    let mut refused = 0;
    for round in 0..15 {
        let sends = (0..20).map(|i| {
            let (client, url) = (client.clone(), gateways[(round + i) % 2].url("/hooks/test"));
            tokio::spawn(async move { client.post(url).body("{}").send().await.unwrap() })
        });
        for response in futures_util::future::join_all(sends).await {
            let response = response.unwrap();
            match response.status().as_u16() {
                200 => admitted += 1,
                429 => {
                    assert!(response.headers().contains_key("retry-after"));
                    refused += 1;
                }
                other => panic!("unexpected status {other}"),
            }
        }
    }
    // One more is earned back every 600 ms.
    let earned = (started.elapsed().as_millis() / 600) as usize;
    assert!(
        (100..=100 + earned).contains(&admitted),
        "{admitted} admitted in {:?} over both replicas",
        started.elapsed()
    );
    assert_eq!(admitted + refused, 300);
}

fn endpoint(app: &TestApp, retry: &str) -> String {
    acme_endpoint(app, "/hooks/acme", &format!("retry: {retry}"))
}

/// Posts `count` messages spread over `gateways`, 32 at a time; their delivery ids.
async fn send_messages(gateways: &[&Gateway], count: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(32) {
        let sends = chunk.iter().map(|i| {
            let client = client.clone();
            let url = format!("http://{}/acme", gateways[i % gateways.len()].outbound);
            let body = format!("{{\"n\":{i}}}");
            tokio::spawn(async move {
                let response = client.post(url).body(body).send().await.unwrap();
                assert_eq!(response.status(), 202);
                let json: serde_json::Value = response.json().await.unwrap();
                json["delivery_id"].as_str().unwrap().to_string()
            })
        });
        for id in futures_util::future::join_all(sends).await {
            ids.push(id.unwrap());
        }
    }
    ids
}

/// How many times the receiver got each delivery id.
fn deliveries(app: &TestApp) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in app.received() {
        if let Some(id) = request.header("x-rejento-delivery-id") {
            *seen.entry(id.to_string()).or_default() += 1;
        }
    }
    seen
}

async fn wait_for_all(app: &TestApp, ids: &[String], within: Duration) -> HashMap<String, usize> {
    let started = Instant::now();
    loop {
        let seen = deliveries(app);
        if ids.iter().all(|id| seen.contains_key(id)) {
            return seen;
        }
        assert!(
            started.elapsed() < within,
            "{} of {} delivered",
            ids.iter().filter(|id| seen.contains_key(*id)).count(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_deliver_two_thousand_messages_exactly_once() {
    let app = TestApp::start().await;
    let routes = "    - { name: unused, path: /unused, verify: none }\n";
    let endpoints = endpoint(&app, "{ preset: rejento }");
    let redis = TestRedis::start();
    let [a, b] = replicas(&redis, &app, &prefix(), routes, Some(&endpoints)).await;
    let ids = send_messages(&[&a, &b], 2000).await;
    let seen = wait_for_all(&app, &ids, Duration::from_secs(60)).await;
    stays(
        "nothing delivered twice",
        Duration::from_secs(1),
        async || app.received().len() == 2000,
    )
    .await;
    assert_eq!(seen.len(), 2000);
    // Both replicas worked the shared queue.
    for gateway in [&a, &b] {
        let metrics = gateway.metrics().await;
        assert!(
            metrics.contains(
                "hookgate_outbound_messages_total{endpoint=\"acme\",outcome=\"delivered\"}"
            ),
            "each replica delivered some"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_one_replica_mid_run_loses_nothing() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_millis(20));
    let routes = "    - { name: unused, path: /unused, verify: none }\n";
    // A 2 s attempt timeout makes the lease 7 s: the survivor takes over after that.
    let endpoints = endpoint(&app, "{ schedule: [1s], max_attempts: 5, timeout: 2s }");
    let redis = TestRedis::start();
    let [mut a, b] = replicas(&redis, &app, &prefix(), routes, Some(&endpoints)).await;
    let ids = send_messages(&[&a, &b], 1000).await;
    while app.received().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill();
    wait_for_all(&app, &ids, Duration::from_secs(60)).await;
    // What the killed replica had claimed comes back to the survivor after its lease.
    let started = Instant::now();
    loop {
        let left = b.stored_deliveries().await;
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the queue never drained: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = deliveries(&app);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= 64,
        "{duplicates} sent twice: at most what the killed replica had in flight"
    );
}

/// A Redis of the test's own that writes every command to its AOF before answering.
struct PersistentRedis {
    server: Option<RedisServer>,
    port: u16,
    dir: tempfile::TempDir,
}

impl PersistentRedis {
    fn start() -> Self {
        let mut redis = PersistentRedis {
            server: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        self.server = None;
    }

    /// Starts it again on the same port and files (it replays its AOF).
    fn restart(&mut self) {
        let port = self.port.to_string();
        let args = [
            "--port",
            &port,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ];
        self.server = Some(RedisServer::start(self.dir.path(), self.port, &args));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restart_is_survived_by_policy_and_nothing_accepted_is_lost() {
    let mut redis = PersistentRedis::start();
    let app = TestApp::start().await;
    app.respond_with(503, Duration::ZERO);
    let routes = concat!(
        "    - { name: strict, path: /hooks/strict, verify: none, dedupe: { id: \"header:X-Delivery-Id\", ttl: 1h } }\n",
        "    - { name: lenient, path: /hooks/lenient, verify: none, dedupe: { id: \"header:X-Delivery-Id\", ttl: 1h }, on_store_error: fail_open }\n",
    );
    let gateway = Gateway::builder(app.url())
        .redis(&redis.url(), "hookgate:")
        .routes(routes)
        // A 2 s timeout makes the lease 7 s: attempts cut off by the outage come back soon.
        .endpoints(&endpoint(
            &app,
            "{ schedule: [300ms], max_attempts: 100, timeout: 2s }, circuit: { failures: 100000 }",
        ))
        .start()
        .await;
    let ids = send_messages(&[&gateway], 200).await;
    // Redis dies while every message waits for its next retry.
    redis.kill();
    let client = reqwest::Client::new();
    let post = |path: &str| {
        client
            .post(gateway.url(path))
            .header("X-Delivery-Id", "evt_outage")
            .body("{}")
            .send()
    };
    let strict = post("/hooks/strict").await.unwrap();
    assert_eq!(
        strict.status(),
        503,
        "fail_closed: the provider retries later"
    );
    assert!(strict.headers().contains_key("retry-after"));
    let json: serde_json::Value = strict.json().await.unwrap();
    assert_eq!(json["error"], "dedupe_unavailable");
    let before = app.received().len();
    let lenient = post("/hooks/lenient").await.unwrap();
    assert_eq!(
        lenient.status(),
        503,
        "fail_open: forwarded, the app answered"
    );
    assert!(
        app.received()[before..]
            .iter()
            .any(|r| r.uri == "/hooks/lenient"),
        "the app got it"
    );
    let refused = client
        .post(format!("http://{}/acme", gateway.outbound))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "not stored, so not accepted");
    let json: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(json["error"], "queue_unavailable");
    let ready = reqwest::get(gateway.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503, "readyz reports the store");
    gateway
        .metrics_eventually("hookgate_store_errors_total{op=\"dedupe_claim\"}")
        .await;

    // Redis comes back (replaying its AOF); hookgate reconnects by itself.
    redis.restart();
    let failures_before = app.received().len();
    app.respond_with(200, Duration::ZERO);
    let started = Instant::now();
    while reqwest::get(gateway.admin_url("/readyz"))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every accepted message is delivered (answered 200) after the outage.
    let started = Instant::now();
    loop {
        let delivered: std::collections::HashSet<String> = app.received()[failures_before..]
            .iter()
            .filter_map(|r| r.header("x-rejento-delivery-id").map(str::to_string))
            .collect();
        if ids.iter().all(|id| delivered.contains(id)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {} delivered after the restart",
            delivered.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = post("/hooks/strict").await.unwrap();
    assert_eq!(after.status(), 200, "dedupe works again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_circuit_one_replica_opens_holds_the_endpoint_on_every_replica() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_secs(30)); // never answers in time
    let redis = TestRedis::start();
    let prefix = prefix();
    let endpoints = acme_endpoint(
        &app,
        "/hooks/acme",
        "retry: { schedule: [1s], max_attempts: 50, timeout: 300ms }, circuit: { failures: 3, pause: 1m }",
    );
    let start = || {
        Gateway::builder(app.url())
            .redis(&redis.url, &prefix)
            .endpoints(&endpoints)
            .start()
    };
    let first = start().await;
    for n in 0..3 {
        assert_eq!(
            support::send_to_acme(&first, &format!(r#"{{"n":{n}}}"#))
                .await
                .status(),
            202
        );
    }
    support::eventually(
        "the first replica opens the circuit",
        Duration::from_secs(5),
        async || first.log().contains("circuit open"),
    )
    .await;
    // A replica that saw none of the failures holds the endpoint too.
    let second = start().await;
    let (_, json) = second.admin(reqwest::Method::GET, "/admin/endpoints").await;
    assert!(
        json["endpoints"][0]["paused_until_ms"].as_u64().is_some(),
        "{json}"
    );
    let before = app.received().len();
    for n in 3..6 {
        assert_eq!(
            support::send_to_acme(&second, &format!(r#"{{"n":{n}}}"#))
                .await
                .status(),
            202
        );
    }
    stays(
        "no replica sends to the endpoint while its circuit is open",
        Duration::from_millis(1500),
        async || app.received().len() == before,
    )
    .await;
    assert!(
        !second.log().contains("circuit open"),
        "the second replica's own breaker never opened"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destinations_concurrency_holds_across_replicas() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_millis(200));
    let redis = TestRedis::start();
    let prefix = prefix();
    let start = || {
        Gateway::builder(app.url())
            .redis(&redis.url, &prefix)
            .endpoints("    []\n")
            .outbound(
                "  allow_private_destinations: [127.0.0.1/32]\n  destinations: { concurrency: 1 }\n",
            )
            .start()
    };
    let replicas = [start().await, start().await];
    let destination = format!("{}/hooks/tenant", app.url());
    for n in 0..6 {
        let body = format!(r#"{{"n":{n}}}"#);
        support::send_to_destination(&replicas[n % 2], &destination, &body).await;
    }
    app.wait_for(6).await;
    // One at a time over both replicas: each delivery starts after the one before ended.
    let mut arrivals: Vec<Instant> = app.received().iter().map(|r| r.at).collect();
    arrivals.sort();
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(190),
            "two deliveries to the destination overlapped: {:?} apart",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_one_replica_creates_is_fanned_out_to_by_the_other() {
    let (app, receiver) = (TestApp::start().await, TestApp::start().await);
    let redis = TestRedis::start();
    let prefix = prefix();
    let start = || {
        Gateway::builder(app.url())
            .redis(&redis.url, &prefix)
            .endpoints("    []\n")
            .outbound("  allow_private_destinations: [127.0.0.0/8]\n")
            .start()
    };
    let [one, two] = [start().await, start().await];
    let body =
        serde_json::json!({ "tenant": "acme", "url": receiver.url(), "event_types": ["order.*"] });
    let (status, created) = one
        .admin_json(reqwest::Method::POST, "/admin/subscriptions", &body)
        .await;
    assert_eq!(status, 201, "{created}");
    let headers = [
        ("Hookgate-Tenant", "acme"),
        ("Hookgate-Event-Type", "order.paid"),
    ];
    let (status, answer) = two.publish(&headers, "{}").await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["deliveries"][0]["subscription"], created["id"],
        "{answer}"
    );
    receiver.wait_for(1).await;
    // A change on one replica is seen by the other at its next publish.
    let path = format!(
        "/admin/subscriptions/{}/disable",
        created["id"].as_str().unwrap()
    );
    let (status, _) = two.admin(reqwest::Method::POST, &path).await;
    assert_eq!(status, 200);
    let (_, answer) = one.publish(&headers, "{}").await;
    assert_eq!(answer["deliveries"], serde_json::json!([]), "{answer}");
    stays(
        "the disabled subscription gets nothing",
        Duration::from_millis(300),
        async || receiver.received().len() == 1,
    )
    .await;
}

/// A portal token issued on one replica opens the portal on the other, and a revocation on
/// either refuses it on both.
#[tokio::test(flavor = "multi_thread")]
async fn a_portal_token_and_its_revocation_hold_on_every_replica() {
    let app = TestApp::start().await;
    let redis = TestRedis::start();
    let prefix = prefix();
    let start = || {
        Gateway::builder(app.url())
            .redis(&redis.url, &prefix)
            .endpoints("    []\n")
            .admin("portal: { signing_key: portal-signing-key-of-32-bytes-or-more }")
            .start()
    };
    let [one, two] = [start().await, start().await];
    let (status, issued) = one
        .admin(reqwest::Method::POST, "/admin/tenants/acme/portal")
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap();
    let list = async |gateway: &Gateway| {
        let response = reqwest::Client::new()
            .get(gateway.admin_url("/portal/api/subscriptions"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    };
    assert_eq!((list(&one).await, list(&two).await), (200, 200));
    let (status, _) = two
        .admin(reqwest::Method::POST, "/admin/tenants/acme/portal/revoke")
        .await;
    assert_eq!(status, 200);
    assert_eq!((list(&one).await, list(&two).await), (401, 401));
}

/// `deliver: queue` with `order` on two replicas: webhooks of one key, stored by either
/// replica and delivered by either, reach the app in the order they were stored, across a
/// failing first attempt.
#[tokio::test(flavor = "multi_thread")]
async fn order_holds_across_two_replicas() {
    let app = TestApp::start().await;
    app.respond_with(503, Duration::ZERO);
    let routes = "    - { name: queued, path: /hooks/queued, verify: none, deliver: queue, queue: { order: \"header:x-key\", timeout: 1s, retry: { schedule: [100ms], max_attempts: 100 }, circuit: { failures: 1000 } } }\n";
    let redis = TestRedis::start();
    let gateways = replicas(&redis, &app, &prefix(), routes, None).await;
    let client = reqwest::Client::new();
    let send = |n: usize, key: &'static str| {
        client
            .post(gateways[n % 2].url("/hooks/queued"))
            .header("x-key", key)
            .header("x-id", format!("{key}{n:02}"))
            .body("{}")
            .send()
    };
    // Each line's first webhook fails its first attempt; the later ones come meanwhile.
    for key in ["a", "b"] {
        assert_eq!(send(0, key).await.unwrap().status(), 200);
    }
    app.wait_for(2).await;
    app.respond_with(200, Duration::ZERO);
    for n in 1..10 {
        for key in ["a", "b"] {
            assert_eq!(send(n, key).await.unwrap().status(), 200);
        }
    }
    let started = Instant::now();
    loop {
        let received = app.received();
        let ids: std::collections::HashSet<&str> =
            received.iter().filter_map(|r| r.header("x-id")).collect();
        if ids.len() == 20 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of 20",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for key in ["a", "b"] {
        let line: Vec<String> = app
            .received()
            .iter()
            .filter(|r| r.header("x-key") == Some(key))
            .map(|r| r.header("x-id").unwrap().to_string())
            .collect();
        let mut sorted = line.clone();
        sorted.sort();
        assert_eq!(line, sorted, "line {key} out of order");
    }
}
