//! What an app or an API caller sends that cannot be read is refused, never taken as
//! absent: a tenant that is raw UTF-8, empty or outside the tenant charset gets
//! `400 invalid_tenant` and nothing is stored (it used to reach the tenant-less
//! subscriptions); the same for idempotency keys, per-request destinations' headers and
//! inbound delivery ids. Subscription URLs that no request could carry are refused when
//! they are created, not at every delivery.

mod support;

use std::time::Duration;

use base64::Engine;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Value};

use support::{stays, Gateway, GatewayBuilder, TestApp};

fn subscribing() -> GatewayBuilder {
    Gateway::builder("http://127.0.0.1:9")
        .endpoints("    []\n")
        .outbound("  allow_private_destinations: [127.0.0.0/8]\n")
}

/// Publishes `{}` of type `job.created` with a raw `Hookgate-Tenant` value.
async fn publish_as(gateway: &Gateway, tenant: &[u8]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/events", gateway.outbound))
        .header("Hookgate-Event-Type", "job.created")
        .header("Hookgate-Tenant", HeaderValue::from_bytes(tenant).unwrap())
        .body("{}")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_that_cannot_be_read_is_refused_never_sent_to_the_tenantless() {
    let (tenantless, muenchen) = (TestApp::start().await, TestApp::start().await);
    let gateway = subscribing().start().await;
    // The API refuses a tenant outside the charset, as it refuses it in events.
    let (status, answer) = gateway
        .admin_json(
            Method::POST,
            "/admin/subscriptions",
            &json!({ "tenant": "münchen", "url": muenchen.url(), "event_types": ["*"] }),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_tenant")),
        "{answer}"
    );
    for (tenant, app) in [(json!("muenchen"), &muenchen), (Value::Null, &tenantless)] {
        let (status, answer) = gateway
            .admin_json(
                Method::POST,
                "/admin/subscriptions",
                &json!({ "tenant": tenant, "url": app.url(), "event_types": ["*"] }),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    for tenant in [
        "m\u{fc}nchen".as_bytes(),
        b"",
        b"   ",
        b"a b",
        b"acme/../x",
        &[b'x'; 129],
    ] {
        let (status, answer) = publish_as(&gateway, tenant).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_tenant")),
            "{:?}: {answer}",
            String::from_utf8_lossy(tenant)
        );
    }
    // A repeated tenant header is as ambiguous as an unreadable one.
    let response = reqwest::Client::new()
        .post(format!("http://{}/events", gateway.outbound))
        .header("Hookgate-Event-Type", "job.created")
        .header("Hookgate-Tenant", "muenchen")
        .header("Hookgate-Tenant", "other")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    stays(
        "nothing stored, nothing sent",
        Duration::from_millis(300),
        async || {
            gateway.stored_deliveries().await.is_empty()
                && tenantless.received().len() + muenchen.received().len() == 0
        },
    )
    .await;
    // The tenant's own events still reach its subscription, and only it.
    let (status, answer) = publish_as(&gateway, b"muenchen").await;
    assert_eq!(status, 202, "{answer}");
    muenchen.wait_for(1).await;
    stays(
        "the tenantless subscription gets nothing",
        Duration::from_millis(200),
        async || tenantless.received().is_empty(),
    )
    .await;
    let metrics = gateway.metrics().await;
    assert!(
        !metrics.contains("m\u{fc}nchen"),
        "an unreadable tenant is not a label"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_keys_and_destination_headers_fail_closed() {
    let receiver = TestApp::start().await;
    let gateway = subscribing().start().await;
    let client = reqwest::Client::new();
    let raw = |text: &str| HeaderValue::from_bytes(text.as_bytes()).unwrap();
    // An idempotency key that is not text would have stored the event twice.
    for _ in 0..2 {
        let response = client
            .post(format!("http://{}/events", gateway.outbound))
            .header("Hookgate-Event-Type", "job.created")
            .header("Idempotency-Key", raw("schlüssel"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_idempotency_key", "{answer}");
    }
    // A per-request destination's scheme that is not text was read as the default scheme.
    let destination = format!("{}/hooks", receiver.url());
    let cases = [
        ("Hookgate-Scheme", raw("gïthub"), "bad_scheme"),
        ("Hookgate-Secret", raw("sécret"), "bad_secret"),
        (
            "Idempotency-Key",
            HeaderValue::from_static(""),
            "invalid_idempotency_key",
        ),
    ];
    for (name, value, code) in cases {
        let mut request = client
            .post(format!("http://{}/", gateway.outbound))
            .header("Hookgate-Destination", &destination)
            .header("Hookgate-Scheme", "github")
            .header("Hookgate-Secret", "tenant-secret")
            .body("{}");
        request = request.header(name, value);
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{name}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], code, "{name}: {answer}");
    }
    let response = client
        .post(format!("http://{}/", gateway.outbound))
        .header("Hookgate-Destination", raw("http://127.0.0.1/ü"))
        .header("Hookgate-Secret", "tenant-secret")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    stays(
        "nothing stored, nothing sent",
        Duration::from_millis(200),
        async || gateway.stored_deliveries().await.is_empty() && receiver.received().is_empty(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_urls_no_request_can_carry_are_refused_when_created() {
    let gateway = subscribing().start().await;
    for url in [
        "http://127.0.0.1:9/a\r\nX-Injected: 1",
        "http://127.0.0.1:9/a\nb",
        "http://127.0.0.1:9/a b",
        "http://127.0.0.1:9/\"quoted\"",
        "http://127.0.0.1:9/<script>",
        "http://127.0.0.1:9/caf\u{e9}",
        "http://127.0.0.1:9/%zz",
    ] {
        let (status, answer) = gateway
            .admin_json(
                Method::POST,
                "/admin/subscriptions",
                &json!({ "url": url, "event_types": ["*"] }),
            )
            .await;
        assert_eq!(
            (status, answer["error"].as_str(), answer["field"].as_str()),
            (400, Some("invalid_url"), Some("url")),
            "{url:?}: {answer}"
        );
    }
    // The same in a PATCH of a good one.
    let (status, created) = gateway
        .admin_json(
            Method::POST,
            "/admin/subscriptions",
            &json!({ "url": "http://127.0.0.1:9/ok?a=%20b", "event_types": ["*"] }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, answer) = gateway
        .admin_json(
            Method::PATCH,
            &format!("/admin/subscriptions/{id}"),
            &json!({ "url": "http://127.0.0.1:9/a b" }),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_url"))
    );
}

#[test]
fn the_files_subscriptions_take_the_same_tenants_and_urls() {
    let dir = tempfile::tempdir().unwrap();
    for (subscription, expected) in [
        (
            "{ id: a, tenant: \"münchen\", url: \"http://h/\", event_types: [\"*\"], sign: { scheme: github, secret: s } }",
            "tenant",
        ),
        (
            "{ id: a, url: \"http://h/a b\", event_types: [\"*\"], sign: { scheme: github, secret: s } }",
            "a URL cannot hold ' '",
        ),
    ] {
        let config = dir.path().join("c.yaml");
        std::fs::write(
            &config,
            format!("outbound:\n  endpoints: []\n  subscriptions:\n    - {subscription}\n"),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["check", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains(expected), "{text}");
    }
}

/// The Standard Webhooks signature of `id.timestamp.body`, computed here with ring.
fn standard_signature(secret: &str, id: &[u8], timestamp: u64, body: &[u8]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut content = id.to_vec();
    content.extend_from_slice(format!(".{timestamp}.").as_bytes());
    content.extend_from_slice(body);
    format!("v1,{}", engine.encode(ring::hmac::sign(&key, &content)))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbound_delivery_id_that_is_not_text_gets_its_own_code() {
    let app = TestApp::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let gateway = Gateway::builder(app.url())
        .routes(&format!(
            "    - {{ name: std, path: /hooks/std, verify: {{ scheme: standard-webhooks, secrets: [\"{secret}\"] }}, dedupe: {{ id: scheme, ttl: 1h }} }}\n    - {{ name: plain, path: /hooks/plain, verify: none, dedupe: {{ id: \"header:X-Delivery\", ttl: 1h }} }}\n    - {{ name: json, path: /hooks/json, verify: none, dedupe: {{ id: \"json:/id\", ttl: 1h }} }}\n"
        ))
        .start()
        .await;
    let client = reqwest::Client::new();
    let id = "msg_ü".as_bytes();
    let timestamp = hookgate::clock::unix_now();
    let body = br#"{"type":"x"}"#;
    let response = client
        .post(gateway.url("/hooks/std"))
        .header("webhook-id", HeaderValue::from_bytes(id).unwrap())
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            standard_signature(secret, id, timestamp, body),
        )
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "unreadable_header", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("webhook-id"));

    for value in [
        HeaderValue::from_bytes(id).unwrap(),
        HeaderValue::from_static(""),
    ] {
        let response = client
            .post(gateway.url("/hooks/plain"))
            .header("X-Delivery", value)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_delivery_id", "{answer}");
    }
    for body in [r#"{"id": {"nested": 1}}"#, r#"{"id": ""}"#, "not json"] {
        let response = client
            .post(gateway.url("/hooks/json"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_delivery_id", "{body}: {answer}");
    }
    let response = client
        .post(gateway.url("/hooks/json"))
        .body(r#"{"type": "x"}"#)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "missing_delivery_id", "{answer}");
    assert!(app.received().is_empty());
}
