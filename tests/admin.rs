//! The admin port and the process lifecycle.

mod support;

use std::time::Duration;

use support::{Gateway, TestApp};

fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let client = reqwest::Client::new();

    let health = client
        .get(gateway.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = client
        .get(gateway.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready,
        serde_json::json!({"status": "ready", "checks": {"inbound": "ok", "store": "ok"}})
    );

    let series =
        "hookgate_inbound_requests_total{route=\"test\",outcome=\"forwarded\",status=\"200\"}";
    let before = client
        .get(gateway.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert!(before.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let before = before.text().await.unwrap();
    assert!(
        before.contains("hookgate_build_info{version=\""),
        "{before}"
    );
    for _ in 0..3 {
        client
            .post(gateway.url("/hooks/test"))
            .send()
            .await
            .unwrap();
    }
    client.post(gateway.url("/nowhere")).send().await.unwrap();
    let expected = counter(&before, series) + 3.0;
    gateway
        .metrics_eventually(&format!("{series} {expected}"))
        .await;
    let after = gateway
        .metrics_eventually("hookgate_inbound_requests_total{route=\"_unmatched\",outcome=\"route_not_found\",status=\"404\"} 1")
        .await;
    assert_eq!(
        counter(&after, series) - counter(&before, series),
        3.0,
        "{after}"
    );
    assert_eq!(
        counter(
            &after,
            "hookgate_inbound_requests_total{route=\"_unmatched\",outcome=\"route_not_found\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "hookgate_inbound_errors_total{route=\"_unmatched\",error=\"route_not_found\"}"
        ),
        1.0
    );
    assert!(
        counter(
            &after,
            "hookgate_inbound_request_duration_seconds_count{route=\"test\"}"
        ) >= 3.0
    );

    let missing = client.get(gateway.admin_url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_within_the_grace_period() {
    let app = TestApp::start().await;
    // grace_period 1s + shutdown_timeout 1s (the harness default)
    let mut gateway = Gateway::builder(app.url()).start().await;
    let (status, took) = gateway.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(gateway.log().contains("hookgate stopped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_never_contain_secrets() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: test, path: /hooks/test, verify: { scheme: rejento, secrets: [\"${TEST_SECRET}\"] } }\n")
        .env("TEST_SECRET", "very-secret-value")
        .env("HOOKGATE_LOG_FORMAT", "json")
        .env("HOOKGATE_LOG", "debug")
        .start()
        .await;
    reqwest::Client::new()
        .post(gateway.url("/nowhere"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = gateway.log();
    let rejection = log
        .lines()
        .find(|l| l.contains("route_not_found"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{log}"));
    let line: serde_json::Value = serde_json::from_str(rejection).unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["status"], 404);
    assert!(!log.contains("very-secret-value"));
}
