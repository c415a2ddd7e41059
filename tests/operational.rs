//! Operational events: hookgate's own webhooks about the subscriptions and deliveries it
//! runs, to the `hookgate` tenant's subscriptions and to `outbound.operational`'s endpoint.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use support::{eventually, stays, Gateway, TestApp};

const WITHIN: Duration = Duration::from_secs(10);
const OPS_SECRET: &str = "whsec_b3BlcmF0aW9uYWwtZXZlbnRzLXNlY3JldA==";

/// The events `app` received, in order.
fn events(app: &TestApp) -> Vec<Value> {
    app.received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == event_type).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_gone_dead_and_recovered_deliveries_are_told_to_the_vendor() {
    let (ops, vendor, gone, flaky) = (
        TestApp::start().await,
        TestApp::start().await,
        TestApp::start().await,
        TestApp::start().await,
    );
    gone.respond_with(410, Duration::ZERO);
    flaky.respond_with(503, Duration::ZERO);
    let gateway = Gateway::builder("http://127.0.0.1:9")
        .endpoints("    []\n")
        .outbound(&format!(
            "  allow_private_destinations: [127.0.0.0/8]\n  operational: {{ url: \"{}/ops\", sign: {{ scheme: standard-webhooks, secret: \"{OPS_SECRET}\" }}, failing_after: 2, failing_window: 1h }}\n",
            ops.url()
        ))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.001")
        .start()
        .await;
    // The vendor's own subscription, in the reserved tenant: it hears of what it subscribes to.
    let vendor_sub = gateway.subscribe(json!({ "tenant": "hookgate", "url": vendor.url(), "event_types": ["delivery.*", "subscription.disabled"] })).await;
    let gone_sub = gateway.subscribe(json!({ "tenant": "acme", "url": format!("{}/hook?token=t0ps3cret", gone.url()), "event_types": ["order.*"] })).await;
    let flaky_sub = gateway.subscribe(json!({ "tenant": "acme", "url": flaky.url(), "event_types": ["order.*"], "retry": { "schedule": ["1s"], "max_attempts": 20 } })).await;
    let (status, answer) = gateway
        .publish(
            &[
                ("Hookgate-Event-Type", "order.paid"),
                ("Hookgate-Tenant", "acme"),
            ],
            "{}",
        )
        .await;
    assert_eq!(status, 202, "{answer}");

    eventually(
        "the 410 disables the subscription and the vendor hears it",
        WITHIN,
        async || !of_type(&events(&vendor), "subscription.disabled").is_empty(),
    )
    .await;
    eventually("the flaky one is failing", WITHIN, async || {
        !of_type(&events(&vendor), "delivery.failing").is_empty()
    })
    .await;
    flaky.respond_with(200, Duration::ZERO);
    eventually("the flaky one recovers", WITHIN, async || {
        !of_type(&events(&vendor), "delivery.recovered").is_empty()
    })
    .await;
    stays(
        "nothing more comes",
        Duration::from_millis(300),
        async || true,
    )
    .await;

    let told = events(&vendor);
    let disabled = of_type(&told, "subscription.disabled");
    assert_eq!(disabled.len(), 1, "{told:#?}");
    let data = &disabled[0]["data"];
    assert_eq!(data["tenant"], "acme");
    assert_eq!(data["subscription"]["id"], gone_sub["id"]);
    assert!(data["reason"].as_str().unwrap().contains("410"), "{data}");
    assert_eq!(data["subscription"]["enabled"], false);
    // Its URL without the query, where receivers keep tokens.
    assert!(
        !data["subscription"]["url"]
            .as_str()
            .unwrap()
            .contains("t0ps3cret"),
        "{data}"
    );
    let failing = of_type(&told, "delivery.failing");
    assert_eq!(failing.len(), 1, "once per window: {told:#?}");
    let data = &failing[0]["data"];
    assert_eq!(data["subscription"]["id"], flaky_sub["id"]);
    assert_eq!(data["consecutive_failures"], 2);
    assert_eq!(data["last_attempt"]["status"], 503);
    assert!(
        data["counts"]["failed_attempts"].as_u64().unwrap() >= 2,
        "{data}"
    );
    assert_eq!(data["delivery"]["event_type"], "order.paid");
    let recovered = of_type(&told, "delivery.recovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["data"]["subscription"]["id"], flaky_sub["id"]);
    // Subscribed to delivery.* and subscription.disabled only: not created or updated.
    assert!(
        of_type(&told, "subscription.created").is_empty(),
        "{told:#?}"
    );
    assert!(told
        .iter()
        .all(|e| e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z'))));

    // The operational endpoint gets every event, its own subscription's creation included,
    // signed as its `sign` says.
    let at_endpoint = events(&ops);
    let created = of_type(&at_endpoint, "subscription.created");
    assert_eq!(
        created.len(),
        2,
        "acme's two, not the vendor's own: {at_endpoint:#?}"
    );
    assert!(!of_type(&at_endpoint, "delivery.recovered").is_empty());
    for request in ops.received() {
        assert!(request
            .verified_id("standard-webhooks", OPS_SECRET)
            .is_some());
    }
    // No secret of any subscription in any event.
    for secret in
        [&gone_sub, &flaky_sub, &vendor_sub].map(|s| s["secret"].as_str().unwrap().to_string())
    {
        for request in ops.received().iter().chain(vendor.received().iter()) {
            assert!(!String::from_utf8_lossy(&request.body).contains(&secret));
        }
    }
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"hookgate_operational_events_total{event_type="delivery.failing",outcome="published"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_disabling_a_subscription_or_an_endpoint_is_an_event_too() {
    let (ops, receiver) = (TestApp::start().await, TestApp::start().await);
    let gateway = Gateway::builder("http://127.0.0.1:9")
        .endpoints(&format!(
            "    - {{ name: acme, url: \"{}/hook\", sign: {{ scheme: standard-webhooks, secret: \"{OPS_SECRET}\" }} }}\n",
            receiver.url()
        ))
        .outbound(&format!(
            "  allow_private_destinations: [127.0.0.0/8]\n  operational: {{ url: \"{}/ops\", sign: {{ scheme: standard-webhooks, secret: \"{OPS_SECRET}\" }} }}\n",
            ops.url()
        ))
        .start()
        .await;
    let sub = gateway
        .subscribe(json!({ "tenant": "acme", "url": receiver.url(), "event_types": ["*"] }))
        .await;
    let id = sub["id"].as_str().unwrap();
    for action in ["disable", "enable"] {
        let (status, _) = gateway
            .admin(Method::POST, &format!("/admin/subscriptions/{id}/{action}"))
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = gateway
        .admin(Method::POST, "/admin/endpoints/acme/disable")
        .await;
    assert_eq!(status, 200);
    let (status, _) = gateway
        .admin(Method::DELETE, &format!("/admin/subscriptions/{id}"))
        .await;
    assert_eq!(status, 200);
    eventually("five events", WITHIN, async || ops.received().len() >= 5).await;
    // Each is a delivery of its own: they may arrive in any order.
    let mut told: Vec<String> = events(&ops)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            "endpoint.disabled",
            "subscription.created",
            "subscription.deleted",
            "subscription.disabled",
            "subscription.enabled",
        ],
    );
    let all = events(&ops);
    let endpoint = &of_type(&all, "endpoint.disabled")[0]["data"];
    assert_eq!(endpoint["endpoint"], "acme");
    assert_eq!(endpoint["reason"], "disabled through the admin API");
}
