//! Subscriptions end to end: customers' URLs subscribed to event types through the admin
//! API, events published once to `POST /events` and fanned out to every matching
//! subscription, each signed with its own secret, as the seed vendors run it.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use support::{cli, eventually, stays, Gateway, GatewayBuilder, TestApp};

const WITHIN: Duration = Duration::from_secs(5);

/// A gateway whose outbound side has no endpoints, only subscriptions (to receivers on
/// 127.0.0.1, which the SSRF guard must be told to allow), with retries run fast.
fn subscribing(extra: &str) -> GatewayBuilder {
    Gateway::builder("http://127.0.0.1:9")
        .endpoints("    []\n")
        .outbound(&format!(
            "  allow_private_destinations: [127.0.0.0/8]\n{extra}"
        ))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.001")
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

/// Publishes an empty event of `event_type` (for `tenant`); how many deliveries it made.
async fn fan_out(gateway: &Gateway, tenant: Option<&str>, event_type: &str) -> usize {
    let mut headers = vec![("Hookgate-Event-Type", event_type)];
    headers.extend(tenant.map(|t| ("Hookgate-Tenant", t)));
    let (status, answer) = gateway.publish(&headers, "{}").await;
    assert_eq!(status, 202, "{answer}");
    answer["deliveries"].as_array().unwrap().len()
}

/// Checks for a while that nothing more than `count` arrives at `app`.
async fn still(app: &TestApp, count: usize) {
    stays(
        "nothing more arrives",
        Duration::from_millis(300),
        async || app.received().len() == count,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_reaches_each_of_its_tenants_subscriptions_signed_with_their_own_secret() {
    let (zapier, slack, other_tenant, jobs) = (
        TestApp::start().await,
        TestApp::start().await,
        TestApp::start().await,
        TestApp::start().await,
    );
    let gateway = subscribing("").start().await;
    let mut secrets = Vec::new();
    for (tenant, app, types) in [
        ("tenant-a", &zapier, json!(["application.scored"])),
        ("tenant-a", &slack, json!(["application.*"])),
        ("tenant-b", &other_tenant, json!(["application.scored"])),
        ("tenant-a", &jobs, json!(["job.created"])),
    ] {
        let created = gateway.subscribe(json!({ "tenant": tenant, "url": app.url() + "/hooks", "event_types": types, "scheme": "hiresscope", "description": "HiresScope's flow" }),
        )
        .await;
        assert!(field(&created, "secret").starts_with("whsec_"));
        secrets.push(field(&created, "secret").to_string());
    }
    let body = r#"{"event":"application.scored","data":{"application_id":"app_1","score":87}}"#;
    let (status, answer) = gateway
        .publish(&[("Hookgate-Tenant", "tenant-a")], body)
        .await;
    assert_eq!(status, 202, "{answer}");
    assert!(field(&answer, "event_id").starts_with("evt_"));
    assert_eq!(
        answer["deliveries"].as_array().unwrap().len(),
        2,
        "{answer}"
    );
    zapier.wait_for(1).await;
    slack.wait_for(1).await;
    for (app, secret) in [(&zapier, &secrets[0]), (&slack, &secrets[1])] {
        let received = &app.received()[0];
        assert_eq!(received.body.as_ref(), body.as_bytes());
        assert!(received.header("x-hiresscope-signature").is_some());
        received.verified_id("hiresscope", secret); // panics unless it verifies
        let wrong = if secret == &secrets[0] {
            &secrets[1]
        } else {
            &secrets[0]
        };
        let hookgate_verifier = hookgate::schemes::Verifier::new(
            &hookgate::schemes::SchemeSpec::Named("hiresscope".into()),
            &[wrong.as_str()],
            None,
        )
        .unwrap();
        let request = hookgate::schemes::Request {
            method: "POST",
            url: None,
            headers: &received.headers,
            body: &received.body,
        };
        assert!(
            hookgate_verifier
                .verify(&request, hookgate::clock::unix_now())
                .is_err(),
            "each subscription has its own secret"
        );
    }
    still(&other_tenant, 0).await;
    still(&jobs, 0).await;
    still(&zapier, 1).await;
    // The secret is shown once: never in a list or a show.
    let (_, list) = gateway.admin(Method::GET, "/admin/subscriptions").await;
    let listed = list.to_string();
    for secret in &secrets {
        assert!(!listed.contains(secret.as_str()));
    }
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 4);
    gateway
        .metrics_eventually("hookgate_event_deliveries_total{event_type=\"application.scored\"} 2")
        .await;
    let metrics = gateway.metrics().await;
    assert!(!secrets.iter().any(|s| metrics.contains(s.as_str())));
    assert!(!gateway.log().contains(secrets[0].as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_scoped_subscription_gets_only_its_jobs_events_and_a_company_one_gets_all() {
    let (company, job_42) = (TestApp::start().await, TestApp::start().await);
    // 100Hires: the job is in the body.
    let gateway = subscribing("  events: { labels: { job_id: \"json:/job_id\" } }\n")
        .start()
        .await;
    gateway
        .subscribe(
            json!({ "url": company.url(), "event_types": ["*"], "scheme": "standard-webhooks" }),
        )
        .await;
    gateway.subscribe(json!({ "url": job_42.url(), "event_types": ["candidate.*"], "filters": { "job_id": "42" } }),
    )
    .await;
    for job in [42, 7, 42] {
        let body = format!(r#"{{"type":"candidate.applied","id":"e{job}","job_id":{job}}}"#);
        let (status, answer) = gateway.publish(&[], &body).await;
        assert_eq!(status, 202, "{answer}");
    }
    company.wait_for(3).await;
    job_42.wait_for(2).await;
    still(&job_42, 2).await;
    assert!(job_42
        .received()
        .iter()
        .all(|r| String::from_utf8_lossy(&r.body).contains("\"job_id\":42")));
    // A label header says it too, and wins over the body.
    let (_, answer) = gateway
        .publish(
            &[("Hookgate-Label-job_id", "42")],
            r#"{"type":"candidate.applied","job_id":7}"#,
        )
        .await;
    assert_eq!(
        answer["deliveries"].as_array().unwrap().len(),
        2,
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jobylons_event_type_and_action_make_the_type() {
    let receiver = TestApp::start().await;
    let gateway = subscribing("  events: { type: [\"{/event_type}.{/action}\"] }\n")
        .start()
        .await;
    let created = gateway.subscribe(json!({ "url": receiver.url(), "event_types": ["application.created"], "scheme": "jobylon", "secret": "jobylon-partner-token" }),
    )
    .await;
    assert_eq!(field(&created, "secret"), "jobylon-partner-token");
    let (_, skipped) = gateway
        .publish(&[], r#"{"event_type":"application","action":"updated"}"#)
        .await;
    assert_eq!(
        skipped["deliveries"],
        json!([]),
        "matches nothing: accepted, no delivery"
    );
    let (_, answer) = gateway
        .publish(
            &[],
            r#"{"event_type":"application","action":"created","id":1}"#,
        )
        .await;
    assert_eq!(field(&answer, "event_type"), "application.created");
    receiver.wait_for(1).await;
    receiver.received()[0].verified_id("jobylon", "jobylon-partner-token");
    still(&receiver, 1).await;
    gateway
        .metrics_eventually(
            "hookgate_events_published_total{event_type=\"application.updated\",outcome=\"unmatched\"} 1",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_rotation_both_secrets_sign_and_afterwards_only_the_new_one() {
    let receiver = TestApp::start().await;
    let gateway = subscribing("").start().await;
    let created = gateway
        .subscribe(json!({ "url": receiver.url(), "event_types": ["order.paid"] }))
        .await;
    let (id, old) = (field(&created, "id"), field(&created, "secret").to_string());
    let rotate = format!("/admin/subscriptions/{id}/rotate-secret");
    let (status, rotated) = gateway.admin_json(Method::POST, &rotate, &json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new = field(&rotated, "secret").to_string();
    assert_ne!(old, new);
    let publish = || gateway.publish(&[("Hookgate-Event-Type", "order.paid")], "{}");
    publish().await;
    receiver.wait_for(1).await;
    let during = &receiver.received()[0];
    assert_eq!(
        during
            .header("webhook-signature")
            .unwrap()
            .matches("v1,")
            .count(),
        2
    );
    during.verified_id("standard-webhooks", &old);
    during.verified_id("standard-webhooks", &new);
    // Ending the overlap now: only the newest secret signs.
    let (status, again) = gateway
        .admin_json(Method::POST, &rotate, &json!({ "overlap": "0s" }))
        .await;
    assert_eq!(status, 200, "{again}");
    let newest = field(&again, "secret").to_string();
    publish().await;
    receiver.wait_for(2).await;
    let after = &receiver.received()[1];
    assert_eq!(
        after
            .header("webhook-signature")
            .unwrap()
            .matches("v1,")
            .count(),
        1
    );
    after.verified_id("standard-webhooks", &newest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_410_disables_that_subscription_only_and_its_failures_show_in_its_counts() {
    let (gone, fine) = (TestApp::start().await, TestApp::start().await);
    gone.respond_with(410, Duration::ZERO);
    let gateway = subscribing("").start().await;
    let gone_id = field(
        &gateway
            .subscribe(json!({ "url": gone.url(), "event_types": ["*"] }))
            .await,
        "id",
    )
    .to_string();
    gateway
        .subscribe(json!({ "url": gone.url(), "event_types": ["other.*"] }))
        .await;
    gateway
        .subscribe(json!({ "url": fine.url(), "event_types": ["*"] }))
        .await;
    gateway
        .publish(&[("Hookgate-Event-Type", "a.b")], "{}")
        .await;
    gone.wait_for(1).await;
    fine.wait_for(1).await;
    let path = format!("/admin/subscriptions/{gone_id}");
    eventually("the subscription is disabled", WITHIN, async || {
        let (_, s) = gateway.admin(Method::GET, &path).await;
        s["enabled"] == json!(false)
    })
    .await;
    let (_, shown) = gateway.admin(Method::GET, &path).await;
    assert!(field(&shown, "disabled_reason").contains("410"), "{shown}");
    assert_eq!(shown["stats"]["dead"], json!(1), "{shown}");
    assert_eq!(shown["stats"]["last_error"], json!("HTTP 410"), "{shown}");
    let (_, disabled) = gateway
        .admin(Method::GET, "/admin/subscriptions?state=disabled")
        .await;
    assert_eq!(disabled["subscriptions"].as_array().unwrap().len(), 1);
    // The others still receive; the disabled one matches nothing now.
    assert_eq!(fan_out(&gateway, None, "a.b").await, 1);
    fine.wait_for(2).await;
    // Its dead delivery is listed by subscription, and replayed once it is back.
    let (_, dead) = gateway
        .admin(
            Method::GET,
            &format!("/admin/deliveries?subscription={gone_id}"),
        )
        .await;
    assert_eq!(dead["deliveries"].as_array().unwrap().len(), 1, "{dead}");
    gone.respond_with(200, Duration::ZERO);
    gateway.admin(Method::POST, &format!("{path}/enable")).await;
    let (_, replayed) = gateway.admin(Method::POST, &format!("{path}/replay")).await;
    assert_eq!(replayed["replayed"], json!(1), "{replayed}");
    gone.wait_for(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_dedupes_a_whole_event_per_tenant() {
    let receiver = TestApp::start().await;
    let gateway = subscribing("").start().await;
    for tenant in ["a", "b"] {
        gateway
            .subscribe(json!({ "tenant": tenant, "url": receiver.url(), "event_types": ["*"] }))
            .await;
    }
    let send = async |tenant: &'static str| {
        let headers = [
            ("Hookgate-Tenant", tenant),
            ("Hookgate-Event-Type", "x.y"),
            ("Idempotency-Key", "evt-1"),
        ];
        gateway.publish(&headers, "{}").await
    };
    let (_, first) = send("a").await;
    let (status, again) = send("a").await;
    assert_eq!(status, 202);
    assert_eq!(again["duplicate"], json!(true));
    assert_eq!(again["event_id"], first["event_id"]);
    assert_eq!(again["deliveries"], first["deliveries"]);
    let (_, other) = send("b").await;
    assert_ne!(other["event_id"], first["event_id"], "keys are per tenant");
    receiver.wait_for(2).await;
    still(&receiver, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_event_is_sent_at_once_and_shows_the_receivers_answer() {
    let receiver = TestApp::start().await;
    receiver.respond_with(202, Duration::ZERO);
    let gateway = subscribing("").start().await;
    let created = gateway
        .subscribe(json!({ "url": receiver.url(), "event_types": ["*"], "scheme": "rejento" }))
        .await;
    let secret = field(&created, "secret").to_string();
    let path = format!("/admin/subscriptions/{}/test", field(&created, "id"));
    let (status, tested) = gateway.admin(Method::POST, &path).await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["status"], json!(202));
    assert_eq!(tested["success"], json!(true));
    assert_eq!(tested["response"], json!("app says hi"));
    assert!(tested["latency_ms"].is_u64());
    receiver.received()[0].verified_id("rejento", &secret);
    assert!(
        gateway.stored_deliveries().await.is_empty(),
        "a test is not queued"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_and_loses_nothing_stored() {
    let receiver = TestApp::start().await;
    let gateway = subscribing("").start().await;
    let kept = gateway
        .subscribe(json!({ "url": receiver.url(), "event_types": ["*"] }))
        .await;
    let url = receiver.url();
    for (body, code, field_name) in [
        (
            json!({ "url": url, "event_types": ["*"], "colour": "red" }),
            "unknown_field",
            "colour",
        ),
        (
            json!({ "url": "http://10.1.2.3/hook", "event_types": ["*"] }),
            "destination_not_allowed",
            "url",
        ),
        (
            json!({ "url": "http://169.254.169.254/latest", "event_types": ["*"] }),
            "destination_not_allowed",
            "url",
        ),
        (
            json!({ "url": "ftp://example.com/", "event_types": ["*"] }),
            "invalid_url",
            "url",
        ),
        (
            json!({ "url": url, "event_types": [] }),
            "invalid_event_types",
            "event_types",
        ),
        (
            json!({ "url": url, "event_types": ["a*b"] }),
            "invalid_event_types",
            "event_types[0]",
        ),
        (json!({ "url": url }), "missing_field", "event_types"),
        (
            json!({ "url": url, "event_types": ["*"], "scheme": "nope" }),
            "invalid_scheme",
            "scheme",
        ),
        (
            json!({ "url": url, "event_types": ["*"], "retry": { "preset": "nope" } }),
            "invalid_policy",
            "retry.preset",
        ),
        (
            json!({ "url": url, "event_types": ["*"], "scheme": "standard-webhooks", "secret": "not base64 !" }),
            "invalid_secret",
            "secret",
        ),
        (
            json!({ "url": url, "event_types": ["*"], "filters": { "job id": "1" } }),
            "invalid_filters",
            "filters.job id",
        ),
    ] {
        let (status, answer) = gateway
            .admin_json(Method::POST, "/admin/subscriptions", &body)
            .await;
        assert_eq!(
            (status, field(&answer, "error")),
            (400, code),
            "{body} → {answer}"
        );
        assert_eq!(field(&answer, "field"), field_name, "{answer}");
    }
    let (status, page) = gateway
        .admin(Method::GET, "/admin/subscriptions?limit=100000")
        .await;
    assert_eq!((status, field(&page, "error")), (400, "invalid_limit"));
    let patch = format!("/admin/subscriptions/{}", field(&kept, "id"));
    let (status, answer) = gateway
        .admin_json(Method::PATCH, &patch, &json!({ "secret": "whsec_AAAA" }))
        .await;
    assert_eq!((status, field(&answer, "error")), (400, "read_only_field"));
    let (status, answer) = gateway
        .admin(Method::GET, "/admin/subscriptions/sub_missing")
        .await;
    assert_eq!(
        (status, field(&answer, "error")),
        (404, "subscription_not_found")
    );
    let (status, answer) = gateway.publish(&[], r#"{"data":1}"#).await;
    assert_eq!(
        (status, field(&answer, "error")),
        (400, "missing_event_type")
    );
    let (status, answer) = gateway.publish(&[], "not json").await;
    assert_eq!((status, field(&answer, "error")), (400, "invalid_json"));
    let (status, answer) = gateway
        .publish(&[("Hookgate-Event-Type", "bad type")], "{}")
        .await;
    assert_eq!(
        (status, field(&answer, "error")),
        (400, "invalid_event_type")
    );
    // What was stored is intact, and a PATCH applies.
    let (status, changed) = gateway
        .admin_json(
            Method::PATCH,
            &patch,
            &json!({ "event_types": ["a.*"], "description": "only a" }),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["event_types"], json!(["a.*"]));
    let (_, list) = gateway.admin(Method::GET, "/admin/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(fan_out(&gateway, None, "a.b").await, 1);
    receiver.wait_for(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_survive_a_restart_and_lists_are_paged_and_filtered() {
    let receiver = TestApp::start().await;
    let store = tempfile::tempdir().unwrap();
    let gateway = subscribing("").store_dir(store.path()).start().await;
    for i in 0..25 {
        let tenant = if i % 5 == 0 { "five" } else { "other" };
        gateway.subscribe(json!({ "tenant": tenant, "url": receiver.url(), "event_types": [format!("type.{i}")] }),
        )
        .await;
    }
    drop(gateway);
    let gateway = subscribing("").store_dir(store.path()).start().await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = gateway
            .admin(
                Method::GET,
                &format!("/admin/subscriptions?limit=10&after={after}"),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["subscriptions"].as_array().unwrap();
        assert!(items.len() <= 10);
        seen.extend(items.iter().map(|s| field(s, "id").to_string()));
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "each once, in creation order");
    let (_, five) = gateway
        .admin(Method::GET, "/admin/subscriptions?tenant=five")
        .await;
    assert_eq!(five["subscriptions"].as_array().unwrap().len(), 5);
    let (_, typed) = gateway
        .admin(Method::GET, "/admin/subscriptions?event_type=type.3")
        .await;
    assert_eq!(typed["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(fan_out(&gateway, Some("five"), "type.10").await, 1);
    receiver.wait_for(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_creates_lists_rotates_tests_and_disables_subscriptions() {
    let receiver = TestApp::start().await;
    let gateway = subscribing("").start().await;
    let g = &gateway;
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(g, args));
    let url = receiver.url();
    let (ok, out) = run(&[
        "subscriptions",
        "create",
        "--tenant",
        "acme",
        "--url",
        &url,
        "--event-type",
        "application.scored",
        "--event-type",
        "job.*",
        "--filter",
        "job_id=42",
        "--scheme",
        "hiresscope",
        "--json",
    ]);
    assert!(ok, "{out}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = field(&created, "id").to_string();
    let secret = field(&created, "secret").to_string();
    assert_eq!(created["filters"], json!({ "job_id": "42" }));
    let (ok, out) = run(&["subscriptions", "list", "--tenant", "acme"]);
    assert!(
        ok && out.contains(&id) && out.contains("application.scored,job.*"),
        "{out}"
    );
    assert!(!out.contains(&secret));
    let (ok, out) = run(&["subscriptions", "show", &id]);
    assert!(
        ok && out.contains("\"stats\"") && !out.contains(&secret),
        "{out}"
    );
    let (ok, out) = run(&[
        "subscriptions",
        "rotate-secret",
        &id,
        "--overlap",
        "1h",
        "--json",
    ]);
    assert!(ok, "{out}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(field(&rotated, "secret"), secret);
    assert_eq!(rotated["signing_secrets"], json!(2));
    let (ok, out) = run(&["subscriptions", "test", &id, "--json"]);
    assert!(ok, "{out}");
    let tested: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tested["status"], json!(200), "{tested}");
    let (ok, out) = run(&[
        "subscriptions",
        "update",
        &id,
        "--event-type",
        "*",
        "--json",
    ]);
    assert!(ok && out.contains("\"*\""), "{out}");
    let (ok, out) = run(&["subscriptions", "replay", &id, "--json"]);
    assert!(ok && out.contains("\"replayed\":0"), "{out}");
    let (ok, out) = run(&["subscriptions", "disable", &id, "--json"]);
    assert!(ok && out.contains("\"enabled\":false"), "{out}");
    let (ok, out) = run(&["subscriptions", "list", "--state", "disabled", "--json"]);
    assert!(ok && out.contains(&id), "{out}");
    let (ok, out) = run(&[
        "subscriptions",
        "create",
        "--url",
        "http://10.0.0.1/",
        "--event-type",
        "*",
    ]);
    assert!(!ok && out.contains("400 destination_not_allowed"), "{out}");
    let (ok, out) = run(&["subscriptions", "delete", &id]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["subscriptions", "show", &id]);
    assert!(!ok && out.contains("404 subscription_not_found"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_publishes_loses_no_delivery_of_an_accepted_event() {
    use futures_util::StreamExt;
    let receiver = TestApp::start().await;
    // Slow answers keep deliveries in flight when the process is killed.
    receiver.respond_with(200, Duration::from_millis(100));
    let store = tempfile::tempdir().unwrap();
    let builder =
        || subscribing("  destinations: { retry: { timeout: 1s } }\n").store_dir(store.path());
    let mut first = builder().start().await;
    let mut subscriptions = Vec::new();
    for i in 0..20 {
        let created = first.subscribe(
            json!({ "url": format!("{}/s{i}", receiver.url()), "event_types": ["order.*"], "retry": { "schedule": ["1s"], "max_attempts": 50, "timeout": "1s" } }),
        )
        .await;
        subscriptions.push(field(&created, "id").to_string());
    }
    // Publishers run until the kill; only what was answered 202 counts.
    let outbound = first.outbound;
    let publishes = futures_util::stream::iter(0..400)
        .map(|n| async move {
            let response = reqwest::Client::new()
                .post(format!("http://{outbound}/events"))
                .header("Hookgate-Event-Type", "order.paid")
                .body(format!("{{\"n\":{n}}}"))
                .send()
                .await
                .ok()?;
            (response.status() == 202).then_some(())?;
            let answer: Value = response.json().await.ok()?;
            Some((n, answer["deliveries"].as_array()?.len()))
        })
        .buffer_unordered(8);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        first.kill();
    };
    let (accepted, ()) = tokio::join!(publishes.collect::<Vec<_>>(), killer);
    let accepted: Vec<(usize, usize)> = accepted.into_iter().flatten().collect();
    assert!(
        !accepted.is_empty(),
        "some publishes were answered before the kill"
    );
    assert!(
        accepted.iter().all(|(_, n)| *n == 20),
        "each reached all 20 subscriptions"
    );
    let _second = builder().start().await;
    let expected: std::collections::HashSet<(String, String)> = accepted
        .iter()
        .flat_map(|(n, _)| (0..20).map(move |i| (format!("/s{i}"), format!("{{\"n\":{n}}}"))))
        .collect();
    eventually(
        "every delivery of every accepted event arrives",
        Duration::from_secs(60),
        async || {
            let got: std::collections::HashSet<(String, String)> = receiver
                .received()
                .iter()
                .map(|r| (r.uri.clone(), String::from_utf8_lossy(&r.body).into_owned()))
                .collect();
            expected.is_subset(&got)
        },
    )
    .await;
    eprintln!(
        "kill test: {} events accepted before the kill, {} deliveries, {} received",
        accepted.len(),
        expected.len(),
        receiver.received().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_written_in_the_config_are_delivered_to_and_read_only() {
    let receiver = TestApp::start().await;
    let yaml = format!(
        "  subscriptions:\n    - {{ id: acme-orders, tenant: acme, url: \"{}/orders\", event_types: [order.*], sign: {{ scheme: rejento, secret: yaml-secret }}, retry: {{ preset: rejento, timeout: 2s }}, description: from the file }}\n",
        receiver.url()
    );
    let gateway = subscribing(&yaml).start().await;
    let (_, list) = gateway.admin(Method::GET, "/admin/subscriptions").await;
    let listed = &list["subscriptions"][0];
    assert_eq!(listed["id"], json!("cfg_acme-orders"), "{list}");
    assert_eq!(listed["from_config"], json!(true));
    assert!(!list.to_string().contains("yaml-secret"));
    assert_eq!(fan_out(&gateway, Some("acme"), "order.paid").await, 1);
    receiver.wait_for(1).await;
    assert_eq!(receiver.received()[0].uri, "/orders");
    receiver.received()[0].verified_id("rejento", "yaml-secret");
    let (status, refused) = gateway
        .admin_json(
            Method::PATCH,
            "/admin/subscriptions/cfg_acme-orders",
            &json!({ "description": "changed" }),
        )
        .await;
    assert_eq!(
        (status, field(&refused, "error")),
        (409, "subscription_from_config")
    );
    // A bad entry is refused by `check`, with its key path.
    let bad = gateway.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "outbound:\n  subscriptions:\n    - { id: x, url: \"http://a.example/\", event_types: [], sign: { secret: s } }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("outbound.subscriptions[0].event_types"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_matching_a_thousand_subscriptions_is_accepted_in_one_publish() {
    use futures_util::StreamExt;
    let receiver = TestApp::start().await;
    let gateway = subscribing("").start().await;
    let url = receiver.url();
    let creates = futures_util::stream::iter(0..1000)
        .map(|i| {
            let body =
                json!({ "tenant": "big", "url": format!("{url}/r{i}"), "event_types": ["*"] });
            let gateway = &gateway;
            async move { gateway.subscribe(body).await }
        })
        .buffer_unordered(16)
        .count()
        .await;
    assert_eq!(creates, 1000);
    assert_eq!(fan_out(&gateway, Some("big"), "order.paid").await, 1000);
    assert_eq!(fan_out(&gateway, Some("small"), "order.paid").await, 0);
    eventually(
        "a thousand deliveries",
        Duration::from_secs(30),
        async || receiver.received().len() >= 1000,
    )
    .await;
    let mut paths: Vec<String> = receiver.received().iter().map(|r| r.uri.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 1000, "each subscription once");
}
