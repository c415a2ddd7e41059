//! The outbound side end to end: the app posts JSON to hookgate, a real receiver gets it
//! signed, failures are retried on the (scaled) schedule, dead letters can be replayed.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use hookgate::clock::unix_now;
use hookgate::schemes::{Request, SchemeSpec, Verifier};
use support::{
    acme_endpoint, cli, eventually, send_to_acme, send_to_destination as send_to, stays, Gateway,
    TestApp,
};

/// How long a check may take to come true.
const WITHIN: Duration = Duration::from_secs(5);
/// How long a check that nothing more happens watches: several of the worker's polls.
const QUIET: Duration = Duration::from_millis(300);

fn endpoint(app: &TestApp, retry: &str) -> String {
    acme_endpoint(app, "/hooks/acme?tenant=1", &format!("retry: {retry}"))
}

/// Sends a message and returns its delivery id.
async fn send(gateway: &Gateway, body: &str) -> String {
    let response = send_to_acme(gateway, body).await;
    assert_eq!(response.status(), 202);
    let json: serde_json::Value = response.json().await.unwrap();
    json["delivery_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_posts_json_and_the_receiver_gets_it_signed() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ preset: rejento }"))
        .start()
        .await;
    let body = r#"{"event":"candidate.created","data":{"id":"cand_1"}}"#;
    let id = send(&gateway, body).await;
    app.wait_for(1).await;
    let received = &app.received()[0];
    assert_eq!(received.uri, "/hooks/acme?tenant=1");
    assert_eq!(received.body.as_ref(), body.as_bytes());
    assert_eq!(received.header("content-type"), Some("application/json"));
    assert_eq!(received.header("x-rejento-delivery-id"), Some(id.as_str()));
    // The receiver's own check, with hookgate's inbound verifier.
    assert_eq!(
        received.verified_id("rejento", "acme-secret").as_deref(),
        Some(id.as_str())
    );
    // Delivered messages leave the queue.
    eventually(
        "the delivered message leaves the queue",
        WITHIN,
        async || gateway.stored_deliveries().await.is_empty(),
    )
    .await;
    gateway
        .metrics_eventually(
            "hookgate_outbound_messages_total{endpoint=\"acme\",outcome=\"delivered\"} 1",
        )
        .await;
}

/// A message accepted is delivered at once: the worker is woken by the accept, not by
/// its 50 ms tick (no time scale here).
#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_message_is_delivered_without_waiting_for_a_tick() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ preset: rejento }"))
        .start()
        .await;
    let mut latencies = Vec::new();
    for i in 0..20 {
        let sent = Instant::now();
        send(&gateway, "{}").await;
        app.wait_for(i + 1).await;
        latencies.push(app.received()[i].at.duration_since(sent));
        // Spread the messages over the tick: a tick-driven worker waits 25 ms on average
        // on top of the work (its median was 35 ms here), a woken one only for the work.
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    println!(
        "accept to delivery: median {median:?}, worst {:?}",
        latencies[19]
    );
    assert!(
        median < Duration::from_millis(25),
        "accept to delivery, median {median:?}: {latencies:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_retried_with_the_same_delivery_id_until_delivered() {
    let app = TestApp::start().await;
    app.respond_with(503, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(
            &app,
            "{ schedule: [2s, 2s, 2s], max_attempts: 4 }",
        ))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.05")
        .start()
        .await;
    let started = Instant::now();
    let id = send(&gateway, r#"{"n":1}"#).await;
    app.wait_for(2).await;
    app.respond_with(200, Duration::ZERO);
    app.wait_for(3).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "two 100 ms delays (2s scaled by 0.05), took {took:?}"
    );
    stays("no attempt after the success", QUIET, async || {
        app.received().len() == 3
    })
    .await;
    let received = app.received();
    for r in &received {
        assert_eq!(
            r.header("x-rejento-delivery-id"),
            Some(id.as_str()),
            "every retry carries the same id"
        );
    }
    assert_eq!(
        received[0].header("x-rejento-signature"),
        received[2].header("x-rejento-signature")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_messages_become_dead_letters_that_can_be_replayed() {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ schedule: [1s], max_attempts: 2 }"))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.05")
        .start()
        .await;
    let id = send(&gateway, r#"{"n":2}"#).await;
    app.wait_for(2).await;
    stays("max_attempts: 2", QUIET, async || app.received().len() == 2).await;
    let (status, json) = gateway
        .admin(
            reqwest::Method::GET,
            "/admin/deliveries?state=dead&endpoint=acme",
        )
        .await;
    assert_eq!(status, 200);
    let dead = &json["deliveries"][0];
    assert_eq!(dead["id"], id.as_str());
    assert_eq!(dead["state"], "dead");
    let attempts = dead["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[0]["response"], "app says hi");

    app.respond_with(200, Duration::ZERO);
    let (status, _) = gateway
        .admin(
            reqwest::Method::POST,
            &format!("/admin/deliveries/{id}/retry"),
        )
        .await;
    assert_eq!(status, 200);
    app.wait_for(3).await;
    assert_eq!(
        app.received()[2].header("x-rejento-delivery-id"),
        Some(id.as_str())
    );
    eventually("no dead letter left", WITHIN, async || {
        let (_, json) = gateway
            .admin(reqwest::Method::GET, "/admin/deliveries?state=dead")
            .await;
        json["deliveries"].as_array().unwrap().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_stops_at_once_and_the_admin_api_needs_the_token() {
    let app = TestApp::start().await;
    app.respond_with(410, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ preset: jobylon }"))
        .start()
        .await;
    let id = send(&gateway, "{}").await;
    app.wait_for(1).await;
    stays("410 Gone is not retried", QUIET, async || {
        app.received().len() == 1
    })
    .await;
    let (_, json) = gateway
        .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
        .await;
    assert_eq!(json["state"], "dead");

    let unauthorized = reqwest::get(gateway.admin_url("/admin/deliveries"))
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let (status, json) = gateway
        .admin(reqwest::Method::GET, "/admin/deliveries/msg_nope")
        .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (404, Some("delivery_not_found"))
    );
    let (status, json) = gateway
        .admin(reqwest::Method::POST, "/admin/deliveries/msg_nope/retry")
        .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (404, Some("delivery_not_found"))
    );
    let unknown = reqwest::Client::new()
        .post(format!("http://{}/nope", gateway.outbound))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_accepted_messages_survive_kill_9_mid_delivery() {
    let app = TestApp::start().await;
    // Slow answers keep deliveries in flight when the process is killed.
    app.respond_with(200, Duration::from_millis(300));
    let store = tempfile::tempdir().unwrap();
    let builder = || {
        Gateway::builder(app.url())
            // A 1 s timeout makes the lease of the messages in flight at the kill 6 s.
            .endpoints(&endpoint(
                &app,
                "{ schedule: [1s], max_attempts: 50, timeout: 1s }",
            ))
            .env("HOOKGATE_RETRY_TIME_SCALE", "0.05")
            .store_dir(store.path())
    };
    let mut first = builder().start().await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/acme", first.outbound);
    let sends = (0..1000).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(url)
                .body(format!("{{\"n\":{i}}}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
            response.json::<serde_json::Value>().await.unwrap()["delivery_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    });
    let ids: Vec<String> = futures_util::stream::iter(sends)
        .buffer_unordered(16)
        .collect()
        .await;
    first.kill();
    let before_restart = app.received().len();
    let second = builder().start().await;
    let started = Instant::now();
    loop {
        let delivered: std::collections::HashSet<String> = app
            .received()
            .iter()
            .filter_map(|r| r.header("x-rejento-delivery-id").map(str::to_string))
            .collect();
        let lost = ids.iter().filter(|id| !delivered.contains(*id)).count();
        if lost == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "lost {lost} of 1000"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the messages that were in flight at the kill come back after their lease.
    loop {
        let (_, json) = second
            .admin(reqwest::Method::GET, "/admin/deliveries")
            .await;
        if json["deliveries"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the queue did not drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = app.received().len();
    let duplicates = received - 1000;
    eprintln!(
        "crash test: {before_restart} delivered before the kill, {duplicates} sent twice, 0 lost"
    );
    // Only what was in flight at the kill (at most the worker's 64 concurrent deliveries) is sent twice.
    assert!(
        duplicates <= 64,
        "{duplicates} duplicates ({before_restart} received before the restart)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_dedupes_enqueues() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ preset: rejento }"))
        .start()
        .await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = client
            .post(format!("http://{}/acme", gateway.outbound))
            .header("Idempotency-Key", "order-42")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        ids.push(
            response.json::<serde_json::Value>().await.unwrap()["delivery_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    app.wait_for(1).await;
    stays("one delivery for one key", QUIET, async || {
        app.received().len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_proxy_mode_serves_an_unchanged_client_with_http_proxy_set() {
    let app = TestApp::start().await;
    let endpoints = format!(
        "    - {{ name: acme, url: \"{}/hooks/acme\", match: \"http://hooks.acme.example/*\", sign: {{ scheme: rejento, secret: acme-secret }} }}\n",
        app.url()
    );
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoints)
        .start()
        .await;
    let proxy = format!("http://{}", gateway.outbound);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-w",
                " %{http_code}",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"via":"proxy"}"#,
            ])
            .arg("http://hooks.acme.example/webhooks/in")
            .env("http_proxy", proxy)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.ends_with(" 202"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.wait_for(1).await;
    let received = &app.received()[0];
    assert_eq!(received.uri, "/hooks/acme");
    assert_eq!(received.body.as_ref(), br#"{"via":"proxy"}"#);
    assert!(received.header("x-rejento-signature").is_some());
    // A URL no endpoint matches is refused, not sent anywhere.
    let proxy = format!("http://{}", gateway.outbound);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-d",
                "{}",
                "http://elsewhere.example/x",
            ])
            .env("http_proxy", proxy)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}

/// An app fanning one event out to its tenants sends each the same `Idempotency-Key`:
/// every tenant's destination gets its message, and a resend to one destination is still
/// a duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_is_scoped_to_its_per_request_destination() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints("    []\n")
        .outbound("  allow_private_destinations: [127.0.0.1/32]\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let send = |tenant: &str| {
        client
            .post(format!("http://{}/", gateway.outbound))
            .header(
                "Hookgate-Destination",
                format!("{}/hooks/{tenant}", app.url()),
            )
            .header("Hookgate-Secret", "tenant-secret")
            .header("Hookgate-Scheme", "github")
            .header("Idempotency-Key", "evt_42")
            .body(r#"{"event":"evt_42"}"#)
            .send()
    };
    let mut ids = Vec::new();
    for tenant in ["tenant-a", "tenant-b", "tenant-c", "tenant-a"] {
        let response = send(tenant).await.unwrap();
        assert_eq!(response.status(), 202);
        let json: serde_json::Value = response.json().await.unwrap();
        ids.push(json["delivery_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[3], ids[0], "the same destination and key: a duplicate");
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    app.wait_for(3).await;
    stays("three deliveries, no more", QUIET, async || {
        app.received().len() == 3
    })
    .await;
    let mut paths: Vec<String> = app.received().iter().map(|r| r.uri.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/hooks/tenant-a", "/hooks/tenant-b", "/hooks/tenant-c"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_request_destinations_are_signed_and_guarded_against_ssrf() {
    let app = TestApp::start().await;
    let guarded = Gateway::builder(app.url())
        .endpoints("    []\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let post = |gateway: &Gateway, headers: Vec<(&'static str, String)>| {
        let mut request = client
            .post(format!("http://{}/", gateway.outbound))
            .body(r#"{"tenant":"a"}"#);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let destination = format!("{}/hooks/tenant-a", app.url());
    let github = |d: &str| {
        vec![
            ("Hookgate-Destination", d.to_string()),
            ("Hookgate-Secret", "tenant-secret".to_string()),
            ("Hookgate-Scheme", "github".to_string()),
        ]
    };
    let (status, json) = post(&guarded, github(&destination)).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("destination_not_allowed")),
        "{json}"
    );
    // Other special-purpose addresses: tests/ssrf_netns.rs, where a wrong answer cannot leave.

    let open = Gateway::builder(app.url())
        .endpoints("    []\n")
        .outbound("  allow_private_destinations: [127.0.0.1/32]\n  secrets: { tenant-b: \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }\n")
        .start()
        .await;
    let (status, json) = post(&open, github(&destination)).await;
    assert_eq!(status, 202, "{json}");
    let (status, _) = post(
        &open,
        vec![
            ("Hookgate-Destination", destination.clone()),
            ("Hookgate-Secret-Ref", "tenant-b".into()),
        ],
    )
    .await;
    assert_eq!(status, 202);
    let (status, json) = post(
        &open,
        vec![
            ("Hookgate-Destination", destination.clone()),
            ("Hookgate-Secret-Ref", "nope".into()),
        ],
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("unknown_secret_ref"))
    );
    let (status, json) = post(
        &open,
        vec![
            ("Hookgate-Destination", destination.clone()),
            ("Hookgate-Secret", "not-whsec".into()),
        ],
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("bad_secret")),
        "standard-webhooks needs a whsec_ secret"
    );
    app.wait_for(2).await;
    let received = app.received();
    let github = received
        .iter()
        .find(|r| r.header("x-hub-signature-256").is_some())
        .expect("the github-signed one");
    let verified = Verifier::new(
        &SchemeSpec::Named("github".into()),
        &["tenant-secret"],
        None,
    )
    .unwrap()
    .verify(
        &Request {
            method: "POST",
            url: None,
            headers: &github.headers,
            body: &github.body,
        },
        unix_now(),
    );
    assert!(verified.is_ok());
    let standard = received
        .iter()
        .find(|r| r.header("webhook-signature").is_some())
        .expect("the default scheme");
    assert!(
        standard.header("hookgate-destination").is_none()
            && standard.header("hookgate-secret-ref").is_none()
    );
    assert_eq!(standard.uri, "/hooks/tenant-a");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_410_disables_the_endpoint_which_keeps_accepting_until_enabled() {
    let app = TestApp::start().await;
    app.respond_with(410, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ preset: jobylon }"))
        .start()
        .await;
    let gone = send(&gateway, r#"{"n":"gone"}"#).await;
    app.wait_for(1).await;
    // The endpoint's state is written just after the attempt.
    eventually("the endpoint is disabled", WITHIN, async || {
        let (_, json) = gateway
            .admin(reqwest::Method::GET, "/admin/endpoints")
            .await;
        json["endpoints"][0]["enabled"] == false
    })
    .await;
    let (_, json) = gateway
        .admin(reqwest::Method::GET, "/admin/endpoints")
        .await;
    assert_eq!(json["endpoints"][0]["name"], "acme");
    assert_eq!(json["endpoints"][0]["enabled"], false);
    assert_eq!(
        json["endpoints"][0]["reason"],
        "the receiver answered 410 Gone"
    );

    app.respond_with(200, Duration::ZERO);
    let waiting = send(&gateway, r#"{"n":"waiting"}"#).await;
    stays(
        "nothing is sent to a disabled endpoint",
        QUIET,
        async || app.received().len() == 1,
    )
    .await;
    let (status, _) = gateway
        .admin(reqwest::Method::POST, "/admin/endpoints/acme/enable")
        .await;
    assert_eq!(status, 200);
    app.wait_for(2).await;
    assert_eq!(
        app.received()[1].header("x-rejento-delivery-id"),
        Some(waiting.as_str())
    );

    // The 410'd message is a dead letter: replay every dead one of the endpoint, then purge.
    let (_, json) = gateway
        .admin(reqwest::Method::POST, "/admin/endpoints/acme/replay")
        .await;
    assert_eq!(json["replayed"], 1);
    app.wait_for(3).await;
    assert_eq!(
        app.received()[2].header("x-rejento-delivery-id"),
        Some(gone.as_str())
    );
    app.respond_with(500, Duration::ZERO);
    let gateway_dead = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ schedule: [1s], max_attempts: 1 }"))
        .start()
        .await;
    send(&gateway_dead, "{}").await;
    app.wait_for(4).await;
    eventually("the message is dead", WITHIN, async || {
        let (_, json) = gateway_dead
            .admin(reqwest::Method::GET, "/admin/deliveries?state=dead")
            .await;
        json["deliveries"].as_array().unwrap().len() == 1
    })
    .await;
    let (_, json) = gateway_dead
        .admin(
            reqwest::Method::DELETE,
            "/admin/deliveries?state=dead&all=true",
        )
        .await;
    assert_eq!(json["purged"], 1);
    let (_, json) = gateway_dead
        .admin(reqwest::Method::GET, "/admin/deliveries")
        .await;
    assert_eq!(json["deliveries"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_lists_retries_and_purges_deliveries() {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ schedule: [1s], max_attempts: 1 }"))
        .start()
        .await;
    let id = send(&gateway, "{}").await;
    app.wait_for(1).await;
    eventually("the message is dead", WITHIN, async || {
        let (_, json) = gateway
            .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
            .await;
        json["state"] == "dead"
    })
    .await;
    let g = &gateway;
    let (ok, out) =
        tokio::task::block_in_place(|| cli(g, &["deliveries", "list", "--state", "dead"]));
    assert!(ok, "{out}");
    assert!(
        out.contains(&id) && out.contains("dead") && out.contains("500"),
        "{out}"
    );
    let (ok, out) = tokio::task::block_in_place(|| cli(g, &["deliveries", "list", "--json"]));
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["deliveries"][0]["id"], id.as_str());
    let (ok, out) = tokio::task::block_in_place(|| cli(g, &["endpoints", "list"]));
    let acme = out
        .lines()
        .find(|l| l.starts_with("acme "))
        .unwrap_or_default();
    // Its health: the last answer with its time, and one failure in a row.
    let columns: Vec<&str> = acme.split_whitespace().collect();
    assert!(ok && columns.len() == 5, "{out}");
    assert_eq!(
        (columns[1], columns[2], columns[4]),
        ("enabled", "500", "1"),
        "{out}"
    );
    // `show` is for people: times as RFC 3339, the payload, each attempt on a line.
    let (ok, out) = tokio::task::block_in_place(|| cli(g, &["deliveries", "show", &id]));
    assert!(ok, "{out}");
    for line in [
        format!("delivery     {id}"),
        "state        dead".to_string(),
        "to           acme".to_string(),
        "payload      2 bytes".to_string(),
        "attempts     1".to_string(),
        "headers sent".to_string(),
        "x-rejento-signature: [masked]".to_string(),
    ] {
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    assert!(
        out.contains("Z  500"),
        "an attempt's time and status: {out}"
    );
    app.respond_with(200, Duration::ZERO);
    let (ok, out) = tokio::task::block_in_place(|| cli(g, &["deliveries", "retry", &id]));
    assert!(ok, "{out}");
    app.wait_for(2).await;
    let (ok, out) = tokio::task::block_in_place(|| cli(g, &["deliveries", "show", "msg_missing"]));
    assert!(!ok && out.contains("404 delivery_not_found"), "{out}");
    let (ok, out) =
        tokio::task::block_in_place(|| cli(g, &["deliveries", "purge", "--all", "--json"]));
    assert!(ok && out.contains("\"purged\":0"), "{out}");
    let (ok, out) =
        tokio::task::block_in_place(|| cli(g, &["endpoints", "list", "--token", "wrong"]));
    assert!(!ok && out.contains("401"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_circuit_breaker_pauses_a_failing_endpoint_then_probes_it() {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    // Scaled by 0.05: retries every 50 ms, a 1 s pause after 2 failures in a row.
    let endpoints = format!(
        "    - {{ name: acme, url: \"{}/hooks/acme\", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 50 }}, circuit: {{ failures: 2, pause: 20s }} }}\n",
        app.url()
    );
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoints)
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.05")
        .start()
        .await;
    send(&gateway, "{}").await;
    app.wait_for(2).await;
    stays(
        "no attempts while the circuit is open (50 ms retries would have made ~10)",
        Duration::from_millis(500),
        async || app.received().len() == 2,
    )
    .await;
    gateway
        .metrics_eventually("hookgate_outbound_circuit_open{endpoint=\"acme\"} 1")
        .await;
    app.respond_with(200, Duration::ZERO);
    app.wait_for(3).await;
    gateway
        .metrics_eventually("hookgate_outbound_circuit_open{endpoint=\"acme\"} 0")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_gets_at_most_its_concurrency_at_once() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_millis(200));
    let endpoints = format!(
        "    - {{ name: acme, url: \"{}/hooks/acme\", sign: {{ scheme: rejento, secret: s }}, concurrency: 1 }}\n",
        app.url()
    );
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoints)
        .start()
        .await;
    let started = Instant::now();
    for _ in 0..3 {
        send(&gateway, "{}").await;
    }
    app.wait_for(3).await;
    // One at a time: the third cannot start before the first two (200 ms each) finished.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_and_a_hanging_receiver_times_out() {
    let app = TestApp::start().await;
    // Scaled by 0.05: the schedule's 1 s is 50 ms, the receiver's Retry-After: 20 is 1 s.
    app.respond_with_headers(429, Duration::ZERO, &[("Retry-After", "20")]);
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(
            &app,
            "{ schedule: [1s], max_attempts: 5, timeout: 1s }",
        ))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.05")
        .start()
        .await;
    send(&gateway, "{}").await;
    app.wait_for(2).await;
    let received = app.received();
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "Retry-After honoured, waited {gap:?}"
    );

    // A receiver that never answers within the 1 s timeout: the attempt is cut off and retried.
    app.respond_with(200, Duration::from_secs(3));
    let id = send(&gateway, "{}").await;
    let attempts = async || {
        let (_, json) = gateway
            .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
            .await;
        json["attempts"].as_array().cloned().unwrap_or_default()
    };
    eventually("an attempt is recorded", WITHIN, async || {
        !attempts().await.is_empty()
    })
    .await;
    let first = attempts().await[0].clone();
    assert_eq!(first["status"], serde_json::Value::Null);
    assert_eq!(first["error"], "no answer within 1s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_closes_the_connection_gets_the_message_again() {
    let app = TestApp::start().await;
    app.close_connections(2);
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ schedule: [1s], max_attempts: 5 }"))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.05")
        .start()
        .await;
    let id = send(&gateway, r#"{"n":1}"#).await;
    app.wait_for(1).await;
    assert_eq!(app.closed(), 2, "two attempts were cut off first");
    assert_eq!(
        app.received()[0].header("x-rejento-delivery-id"),
        Some(id.as_str())
    );
    gateway
        .metrics_eventually(
            "hookgate_outbound_attempts_total{endpoint=\"acme\",status_class=\"error\"} 2",
        )
        .await;
    gateway
        .metrics_eventually(
            "hookgate_outbound_messages_total{endpoint=\"acme\",outcome=\"delivered\"} 1",
        )
        .await;
}

/// Each preset's documented schedule: attempts in all, then the delays between them.
const PRESET_SCHEDULES: &[(&str, usize, &[u64])] = &[
    (
        "standard-webhooks",
        10,
        &[5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
    ),
    ("svix", 8, &[5, 300, 1800, 7200, 18000, 36000, 36000]),
    ("rejento", 5, &[30, 120, 600, 3600]),
    ("100hires", 6, &[60, 300, 1800, 7200, 43200]),
    ("tenzo", 4, &[0, 2, 4]),
    ("jobylon", 4, &[10, 100, 1000]),
];

/// Runs a preset against a receiver that always fails, with time scaled so the whole
/// schedule takes about three seconds; the gaps the receiver saw, and the scale.
async fn run_preset(preset: &str, attempts: usize, delays: &[u64]) -> (Vec<Duration>, f64) {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    let scale = 3.0 / delays.iter().sum::<u64>() as f64;
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, &format!("{{ preset: {preset} }}")))
        .env("HOOKGATE_RETRY_TIME_SCALE", &scale.to_string())
        .start()
        .await;
    let id = send(&gateway, "{}").await;
    app.wait_for(attempts).await;
    // Dead after the last attempt: nothing more comes.
    eventually(
        &format!("{preset}: the message is dead"),
        WITHIN,
        async || {
            let (_, json) = gateway
                .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
                .await;
            json["state"] == "dead"
        },
    )
    .await;
    // Dead is final: its last attempt is recorded, and no other can follow.
    let received = app.received();
    assert_eq!(
        received.len(),
        attempts,
        "{preset}: exactly {attempts} attempts"
    );
    assert!(
        received
            .iter()
            .all(|r| r.header("x-rejento-delivery-id") == Some(id.as_str())),
        "{preset}: one delivery id throughout"
    );
    let gaps = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    (gaps, scale)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_preset_runs_its_documented_schedule_in_scaled_time() {
    let runs = futures_util::future::join_all(
        PRESET_SCHEDULES
            .iter()
            .map(|(preset, attempts, delays)| run_preset(preset, *attempts, delays)),
    )
    .await;
    for ((preset, _, delays), (gaps, scale)) in PRESET_SCHEDULES.iter().zip(runs) {
        let scaled: Vec<Duration> = delays
            .iter()
            .map(|d| Duration::from_secs(*d).mul_f64(scale))
            .collect();
        assert_eq!(gaps.len(), scaled.len(), "{preset}");
        for (i, (gap, delay)) in gaps.iter().zip(&scaled).enumerate() {
            // Never early (1 ms for rounding to whole milliseconds)...
            assert!(
                *gap + Duration::from_millis(1) >= *delay,
                "{preset}: delay {i} was {gap:?}, scheduled {delay:?}"
            );
        }
        // ...never much late in all...
        let (seen, planned) = (
            gaps.iter().sum::<Duration>(),
            scaled.iter().sum::<Duration>(),
        );
        assert!(
            seen < planned + Duration::from_millis(1500),
            "{preset}: {seen:?} for a {planned:?} schedule"
        );
        // ...so the delays come in the schedule's order wherever it tells them apart.
        for i in 0..scaled.len() {
            for j in i + 1..scaled.len() {
                // Far enough apart that a loaded machine's scheduling noise cannot swap them.
                if scaled[j] > scaled[i] + Duration::from_millis(300) {
                    assert!(gaps[i] < gaps[j], "{preset}: delay {i} {gaps:?}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timing_out_per_request_destination_opens_its_own_circuit_and_others_are_delivered() {
    let (hanging, healthy) = (TestApp::start().await, TestApp::start().await);
    hanging.respond_with(200, Duration::from_secs(30));
    let gateway = Gateway::builder(healthy.url())
        .endpoints("    []\n")
        .outbound(concat!(
            "  allow_private_destinations: [127.0.0.1/32]\n",
            "  destinations: { retry: { schedule: [1s], max_attempts: 50, timeout: 300ms }, circuit: { failures: 3, pause: 1m } }\n",
        ))
        .start()
        .await;
    let hanging_url = format!("{}/hooks/a", hanging.url());
    for i in 0..3 {
        send_to(&gateway, &hanging_url, &format!(r#"{{"a":{i}}}"#)).await;
    }
    // Three attempts time out: the destination's circuit opens.
    eventually(
        "the hanging destination's circuit opens",
        WITHIN,
        async || gateway.log().contains("circuit open"),
    )
    .await;
    assert!(
        !gateway.log().contains(&hanging_url),
        "logs name destinations by id, not URL"
    );
    for i in 3..6 {
        send_to(&gateway, &hanging_url, &format!(r#"{{"a":{i}}}"#)).await;
    }
    for i in 0..20 {
        send_to(
            &gateway,
            &format!("{}/hooks/b", healthy.url()),
            &format!(r#"{{"b":{i}}}"#),
        )
        .await;
    }
    healthy.wait_for(20).await;
    assert_eq!(
        hanging.received().len(),
        3,
        "the open circuit holds the hanging destination's messages back"
    );
    let hanging_id = hookgate_id(&hanging_url);
    for line in gateway.log().lines().filter(|l| l.contains("circuit open")) {
        assert!(
            line.contains(&hanging_id),
            "only the hanging destination's circuit opens: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_410_stops_only_its_per_request_destination_until_an_operator_enables_it() {
    let (gone, other) = (TestApp::start().await, TestApp::start().await);
    gone.respond_with(410, Duration::ZERO);
    let gateway = Gateway::builder(other.url())
        .endpoints("    []\n")
        .outbound("  allow_private_destinations: [127.0.0.1/32]\n")
        .start()
        .await;
    let gone_url = format!("{}/hooks/gone", gone.url());
    send_to(&gateway, &gone_url, r#"{"n":1}"#).await;
    gone.wait_for(1).await;
    let id = hookgate_id(&gone_url);
    eventually("the destination is disabled", WITHIN, async || {
        let (_, json) = gateway
            .admin(reqwest::Method::GET, "/admin/endpoints")
            .await;
        json["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == id.as_str() && e["enabled"] == false)
    })
    .await;
    let (_, json) = gateway
        .admin(reqwest::Method::GET, "/admin/endpoints")
        .await;
    let state = json["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(state["reason"], "127.0.0.1 answered 410 Gone", "{state}");

    gone.respond_with(200, Duration::ZERO);
    let waiting = send_to(&gateway, &gone_url, r#"{"n":2}"#).await;
    for i in 0..5 {
        send_to(
            &gateway,
            &format!("{}/hooks/other", other.url()),
            &format!(r#"{{"o":{i}}}"#),
        )
        .await;
    }
    other.wait_for(5).await;
    stays(
        "nothing more goes to the stopped destination",
        QUIET,
        async || gone.received().len() == 1,
    )
    .await;
    let (status, _) = gateway
        .admin(
            reqwest::Method::POST,
            &format!("/admin/endpoints/{id}/enable"),
        )
        .await;
    assert_eq!(status, 200);
    gone.wait_for(2).await;
    assert_eq!(
        gone.received()[1].header("x-github-delivery"),
        Some(waiting.as_str())
    );
}

/// The id hookgate files a per-request destination's state under.
fn hookgate_id(url: &str) -> String {
    hookgate::outbound::destinations::destination_id(url)
}

#[tokio::test(flavor = "multi_thread")]
async fn depth_gauges_match_the_admin_api_after_a_mixed_run() {
    depth_gauges_match_the_admin_api(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn depth_gauges_match_the_admin_api_after_a_mixed_run_on_redis() {
    let redis = support::TestRedis::start();
    depth_gauges_match_the_admin_api(Some(&redis.url)).await;
}

async fn depth_gauges_match_the_admin_api(redis: Option<&str>) {
    let app = TestApp::start().await;
    let beta = format!(
        "    - {{ name: beta, url: \"{}/hooks/beta\", sign: {{ scheme: rejento, secret: b }}, retry: {{ schedule: [1s], max_attempts: 1 }} }}\n",
        app.url()
    );
    let mut builder = Gateway::builder(app.url())
        .endpoints(&(endpoint(&app, "{ schedule: [10m], max_attempts: 3 }") + &beta))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.05");
    if let Some(url) = redis {
        builder = builder.redis(url, &format!("{}:", hookgate::ids::new_delivery_id()));
    }
    let gateway = builder.start().await;
    let to_beta = |n: u32| {
        reqwest::Client::new()
            .post(format!("http://{}/beta", gateway.outbound))
            .body(format!(r#"{{"beta":{n}}}"#))
            .send()
    };
    for n in 0..3 {
        send(&gateway, &format!(r#"{{"delivered":{n}}}"#)).await;
    }
    app.wait_for(3).await;
    app.respond_with(500, Duration::ZERO);
    for n in 0..2 {
        send(&gateway, &format!(r#"{{"scheduled":{n}}}"#)).await;
    }
    for n in 0..3 {
        assert_eq!(to_beta(n).await.unwrap().status(), 202);
    }
    app.wait_for(8).await;
    let dead_count = async || {
        let (_, json) = gateway
            .admin(reqwest::Method::GET, "/admin/deliveries?state=dead")
            .await;
        json["deliveries"].as_array().unwrap().len()
    };
    eventually("three dead letters", WITHIN, async || {
        dead_count().await == 3
    })
    .await;
    // Replay one (it dies again), purge them all, then two more die.
    let (_, json) = gateway
        .admin(reqwest::Method::GET, "/admin/deliveries?state=dead")
        .await;
    let replayed = json["deliveries"][0]["id"].as_str().unwrap().to_string();
    gateway
        .admin(
            reqwest::Method::POST,
            &format!("/admin/deliveries/{replayed}/retry"),
        )
        .await;
    app.wait_for(9).await;
    eventually("the replayed one is dead again", WITHIN, async || {
        dead_count().await == 3
    })
    .await;
    let (_, json) = gateway
        .admin(
            reqwest::Method::DELETE,
            "/admin/deliveries?state=dead&all=true",
        )
        .await;
    assert_eq!(json["purged"], 3);
    for n in 3..5 {
        to_beta(n).await.unwrap();
    }
    eventually("two more dead letters", WITHIN, async || {
        dead_count().await == 2
    })
    .await;

    let expected = [
        ("acme", "pending", 0),
        ("acme", "scheduled", 2),
        ("acme", "dead", 0),
        ("beta", "pending", 0),
        ("beta", "scheduled", 0),
        ("beta", "dead", 2),
    ];
    let (_, queue) = gateway.admin(reqwest::Method::GET, "/admin/queue").await;
    for (endpoint, state, count) in expected {
        let depth = queue["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["endpoint"] == endpoint)
            .unwrap_or_else(|| panic!("no {endpoint} in {queue}"));
        assert_eq!(depth[state], count, "{endpoint} {state}: {queue}");
    }
    let listed = gateway.stored_deliveries().await;
    assert_eq!(listed.len(), 4, "the list agrees: {listed:?}");
    // The gauges are refreshed every second from the same counts.
    eventually("the gauges agree", Duration::from_secs(3), async || {
        let metrics = gateway.metrics().await;
        expected.iter().all(|(endpoint, state, count)| {
            metrics.contains(&format!(
                "hookgate_outbound_queue_depth{{endpoint=\"{endpoint}\",state=\"{state}\"}} {count}\n"
            ))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_steady_stream_to_one_receiver_reuses_a_few_connections() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints(&endpoint(&app, "{ preset: standard-webhooks }"))
        .start()
        .await;
    for round in 0..10 {
        let bodies: Vec<String> = (0..30)
            .map(|i| format!(r#"{{"round":{round},"i":{i}}}"#))
            .collect();
        futures_util::future::join_all(bodies.iter().map(|body| send(&gateway, body))).await;
    }
    app.wait_for(300).await;
    // The endpoint takes 16 deliveries at once (its default concurrency): at most that
    // many connections, each kept and reused, instead of one per message.
    assert!(
        app.connections() <= 16,
        "{} connections for 300 deliveries",
        app.connections()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_per_request_destination_gets_the_configured_concurrency() {
    let (slow, other) = (TestApp::start().await, TestApp::start().await);
    slow.respond_with(200, Duration::from_millis(200));
    let gateway = Gateway::builder(other.url())
        .endpoints("    []\n")
        .outbound(
            "  allow_private_destinations: [127.0.0.1/32]\n  destinations: { concurrency: 1 }\n",
        )
        .start()
        .await;
    let started = Instant::now();
    for n in 0..3 {
        send_to(
            &gateway,
            &format!("{}/hooks/slow", slow.url()),
            &format!(r#"{{"n":{n}}}"#),
        )
        .await;
    }
    // Another destination has a limit of its own: it is not held behind the slow one.
    send_to(&gateway, &format!("{}/hooks/other", other.url()), "{}").await;
    other.wait_for(1).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    slow.wait_for(3).await;
    // One at a time: the third cannot start before the first two (200 ms each) finished.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "took {:?}",
        started.elapsed()
    );
}

/// A delivered message leaves the queue; the admin API (and the console) still show it,
/// with its attempts, from the last deliveries kept in memory.
#[tokio::test(flavor = "multi_thread")]
async fn delivered_messages_are_shown_after_they_leave_the_queue() {
    let receiver = TestApp::start().await;
    let gateway = Gateway::builder(receiver.url())
        .endpoints(&acme_endpoint(&receiver, "/in", ""))
        .start()
        .await;
    let sent = send_to_acme(&gateway, "{\"n\":1}").await;
    let id = sent.json::<serde_json::Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    receiver.wait_for(1).await;
    let mut shown = serde_json::Value::Null;
    eventually("shown as delivered", Duration::from_secs(10), async || {
        shown = gateway
            .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
            .await
            .1;
        shown["state"] == "delivered"
    })
    .await;
    assert_eq!(shown["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(shown["attempts"][0]["status"], 200);
    assert!(shown["delivered_ms"].as_u64().is_some());
    let (_, list) = gateway
        .admin(
            reqwest::Method::GET,
            "/admin/deliveries?state=delivered&endpoint=acme",
        )
        .await;
    assert_eq!(list["deliveries"][0]["id"], id.as_str());
    let (_, other) = gateway
        .admin(
            reqwest::Method::GET,
            "/admin/deliveries?state=delivered&endpoint=other",
        )
        .await;
    assert_eq!(other["deliveries"].as_array().unwrap().len(), 0);
    assert!(
        gateway.stored_deliveries().await.is_empty(),
        "it left the queue"
    );
}

/// The admin API shows where a delivery goes without what a URL may hide (a token in the
/// query) and what it carries: a per-request destination by the name its state is kept
/// under, and the payload's start.
#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_shows_its_destination_without_secrets_and_its_payload() {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints("    []\n")
        .outbound("  allow_private_destinations: [127.0.0.1/32]\n")
        .env("HOOKGATE_RETRY_TIME_SCALE", "100")
        .start()
        .await;
    let port = app.url().rsplit(':').next().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/hooks/t?token=s3cret");
    let response = reqwest::Client::new()
        .post(format!("http://{}/", gateway.outbound))
        .header("Hookgate-Destination", &url)
        .header("Hookgate-Secret", "tenant-secret")
        .header("Hookgate-Scheme", "github")
        .header("Content-Type", "application/json")
        .body(r#"{"order":42}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<serde_json::Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The name is `dynamic:` and the first 16 hex digits of the URL's SHA-256, computed here.
    let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
    let name = format!("dynamic:{}", &const_hex::encode(digest.as_ref())[..16]);
    let (_, list) = gateway
        .admin(reqwest::Method::GET, "/admin/deliveries")
        .await;
    let listed = &list["deliveries"][0];
    assert_eq!(listed["destination"]["name"], name.as_str(), "{list}");
    let shown = format!("http://127.0.0.1:{port}/hooks/t?…");
    assert_eq!(listed["destination"]["url"], shown.as_str());
    let (status, delivery) = gateway
        .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
        .await;
    assert_eq!(status, 200, "{delivery}");
    assert_eq!(delivery["destination"]["url"], shown.as_str());
    assert_eq!(delivery["payload"], r#"{"order":42}"#);
    assert_eq!(delivery["payload_bytes"], 12);
    assert_eq!(delivery["payload_truncated"], false);
    let text = format!("{list}{delivery}");
    assert!(!text.contains("s3cret"), "{text}");
    // Once an attempt failed it waits for its retry: `scheduled`, as the depth metrics say.
    app.wait_for(1).await;
    eventually("the failed attempt recorded", WITHIN, async || {
        let (_, list) = gateway
            .admin(reqwest::Method::GET, "/admin/deliveries?state=scheduled")
            .await;
        list["deliveries"][0]["state"] == "scheduled"
    })
    .await;
    let (_, pending) = gateway
        .admin(reqwest::Method::GET, "/admin/deliveries?state=pending")
        .await;
    assert_eq!(pending["deliveries"], serde_json::json!([]), "{pending}");
    let metrics = gateway
        .metrics_eventually(
            "hookgate_outbound_queue_depth{endpoint=\"dynamic\",state=\"scheduled\"} 1",
        )
        .await;
    assert!(metrics.contains("state=\"scheduled\""));
}
