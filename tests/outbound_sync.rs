//! `mode: sync`: the app waits for the delivery and gets the receiver's own answer; with
//! `sync_fallback: queue`, a delivery that fails within the budget joins the queue.

mod support;

use std::time::{Duration, Instant};

use support::{acme_endpoint, send_to_acme, Gateway, TestApp};

fn sync_endpoint(app: &TestApp, extra: &str) -> String {
    acme_endpoint(
        app,
        "/hooks/acme",
        &format!("mode: sync, sync_budget: 5s, retry: {{ schedule: [1s], max_attempts: 5, timeout: 1s }}{extra}"),
    )
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_gets_the_receivers_own_answer() {
    let app = TestApp::start().await;
    app.respond_with(201, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&sync_endpoint(&app, ""))
        .start()
        .await;
    let body = r#"{"event":"candidate.created"}"#;
    let response = send_to_acme(&gateway, body).await;
    assert_eq!(response.status(), 201, "the receiver's status");
    let id = header(&response, "hookgate-delivery-id")
        .unwrap()
        .to_string();
    assert_eq!(header(&response, "hookgate-attempts"), Some("1"));
    assert_eq!(response.text().await.unwrap(), "app says hi");
    let received = app.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].verified_id("rejento", "acme-secret").as_deref(),
        Some(id.as_str())
    );
    // Nothing is left in the queue.
    assert!(gateway.stored_deliveries().await.is_empty());
    gateway
        .metrics_eventually(
            "hookgate_outbound_messages_total{endpoint=\"acme\",outcome=\"delivered\"} 1",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_is_retried_within_the_budget_then_its_answer_returned() {
    let app = TestApp::start().await;
    app.respond_with(503, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&sync_endpoint(&app, ""))
        .start()
        .await;
    let started = Instant::now();
    let response = send_to_acme(&gateway, "{}").await;
    assert_eq!(response.status(), 503, "the receiver's last status");
    assert_eq!(header(&response, "hookgate-attempts"), Some("3"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "within the budget"
    );
    let received = app.received();
    assert_eq!(received.len(), 3);
    let ids: Vec<_> = received
        .iter()
        .map(|r| r.header("x-rejento-delivery-id"))
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one id on every attempt"
    );
    // Without a fallback, nothing is queued: the app has the answer and decides.
    assert!(gateway.stored_deliveries().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_hangs_up_gets_a_clear_502() {
    let app = TestApp::start().await;
    app.close_connections(10);
    let gateway = Gateway::builder(app.url())
        .endpoints(&sync_endpoint(&app, ""))
        .start()
        .await;
    let response = send_to_acme(&gateway, "{}").await;
    assert_eq!(response.status(), 502);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "delivery_failed");
    assert_eq!(app.closed(), 3, "the default sync_attempts");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_fallback_a_spent_budget_queues_the_message_for_the_schedule() {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&sync_endpoint(
            &app,
            ", sync_fallback: queue, sync_attempts: 2",
        ))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.1")
        .start()
        .await;
    let response = send_to_acme(&gateway, r#"{"n":1}"#).await;
    assert_eq!(response.status(), 202);
    assert_eq!(header(&response, "hookgate-sync-fallback"), Some("queue"));
    assert_eq!(header(&response, "hookgate-attempts"), Some("2"));
    assert_eq!(header(&response, "hookgate-last-status"), Some("500"));
    let json: serde_json::Value = response.json().await.unwrap();
    let id = json["delivery_id"].as_str().unwrap().to_string();
    let (status, record) = gateway
        .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
        .await;
    assert_eq!(status, 200, "queued: {record}");
    assert_eq!(record["attempts"].as_array().unwrap().len(), 2);

    // The receiver recovers; the worker delivers the same message, same id.
    app.respond_with(200, Duration::ZERO);
    app.wait_for(3).await;
    assert_eq!(
        app.received()[2].header("x-rejento-delivery-id"),
        Some(id.as_str())
    );
    gateway
        .metrics_eventually(
            "hookgate_outbound_messages_total{endpoint=\"acme\",outcome=\"delivered\"} 1",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_disables_the_endpoint_and_later_posts_are_refused() {
    let app = TestApp::start().await;
    app.respond_with(410, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .endpoints(&sync_endpoint(&app, ""))
        .start()
        .await;
    let response = send_to_acme(&gateway, "{}").await;
    assert_eq!(response.status(), 410, "passed back, not retried");
    assert_eq!(app.received().len(), 1);
    let response = send_to_acme(&gateway, "{}").await;
    assert_eq!(response.status(), 503);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "endpoint_disabled");
    assert_eq!(app.received().len(), 1, "a disabled endpoint gets nothing");
}
