//! Finding 6 of the hardening review: secrets and internals never leave hookgate, not in
//! an API answer, not in a log line at any level, not in a provider's error answer.

mod support;

use std::time::Duration;

use support::{free_port, Gateway, RedisServer, TestApp, ADMIN_TOKEN};

const TENANT_SECRET: &str = "tenant-secret-5f1c9a";
const ROUTE_SECRET: &str = "route-secret-77ab3e";

#[tokio::test(flavor = "multi_thread")]
async fn secrets_stay_out_of_admin_answers_and_trace_logs() {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    let gateway = Gateway::builder(app.url())
        .env("HOOKGATE_LOG", "trace")
        .routes(&format!(
            "    - {{ name: signed, path: /hooks/signed, verify: {{ scheme: github, secrets: [{ROUTE_SECRET}] }} }}\n"
        ))
        .endpoints("    []\n")
        .outbound("  allow_private_destinations: [127.0.0.1/32]\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let accepted = client
        .post(format!("http://{}/", gateway.outbound))
        .header(
            "Hookgate-Destination",
            format!("{}/hooks/tenant", app.url()),
        )
        .header("Hookgate-Secret", TENANT_SECRET)
        .header("Hookgate-Scheme", "github")
        .body(r#"{"tenant":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let id = accepted.json::<serde_json::Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_for(1).await;

    let listed = gateway.stored_deliveries().await;
    let (status, one) = gateway
        .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
        .await;
    assert_eq!(status, 200);
    for answer in [serde_json::Value::Array(listed), one.clone()] {
        let text = answer.to_string();
        assert!(!text.contains(TENANT_SECRET), "{text}");
    }
    assert_eq!(one["target"]["secret"], "[redacted]");

    // An inbound request that fails its signature check, with credentials in its head.
    let refused = client
        .post(gateway.url("/hooks/signed"))
        .header("X-Hub-Signature-256", "sha256=00")
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    gateway
        .metrics_eventually("hookgate_outbound_attempts_total")
        .await;

    let log = gateway.log();
    assert!(log.len() > 1000, "a trace log was written:\n{log}");
    for secret in [TENANT_SECRET, ROUTE_SECRET, ADMIN_TOKEN] {
        assert!(!log.contains(secret), "the log holds {secret}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_get_stable_codes_not_store_internals() {
    let app = TestApp::start().await;
    // A Redis with a password, which goes away once hookgate is up.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = RedisServer::start(
        dir.path(),
        port,
        &[
            "--port",
            &port.to_string(),
            "--requirepass",
            "store-password-9d2",
        ],
    );
    let redis = format!("redis://:store-password-9d2@127.0.0.1:{port}/0");
    let gateway = Gateway::builder(app.url())
        .redis(&redis, "hostile:")
        .routes("    - { name: test, path: /hooks/test, verify: none, dedupe: { id: \"header:X-Delivery\" }, rate_limit: { limit: 100/s, key: ip } }\n")
        .start()
        .await;
    drop(server);
    let answer = reqwest::Client::new()
        .post(gateway.url("/hooks/test"))
        .header("X-Delivery", "d-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    let body = answer.text().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "dedupe_unavailable");
    for internal in ["refused", "os error", "127.0.0.1", "store-password"] {
        assert!(!body.contains(internal), "{body}");
    }
    assert!(app.received().is_empty());
    assert!(
        !gateway.log().contains("store-password-9d2"),
        "{}",
        gateway.log()
    );
}
