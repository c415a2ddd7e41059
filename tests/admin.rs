//! The admin port and the process lifecycle.

mod support;

use std::time::Duration;

use support::{eventually, free_port, post, sign, Gateway, RedisServer, TestApp, ADMIN_TOKEN};

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
    // The first lines say what it serves, and where the console is.
    let log = gateway.log();
    for line in [
        format!("inbound: http://{} -> ", gateway.inbound),
        format!(
            "admin: http://{} (/healthz /readyz /metrics)",
            gateway.admin
        ),
        format!("console: http://{}/ui/", gateway.admin),
        "store: embedded, ".to_string(),
    ] {
        assert!(log.contains(&line), "no {line:?} in:\n{log}");
    }

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

/// The log lines after `mark` bytes of it.
fn lines_after(log: &str, mark: usize) -> Vec<String> {
    log[mark..].lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_process_stops_at_once_on_sigterm_with_one_line() {
    let app = TestApp::start().await;
    // A grace period it must not sit out when nothing is under way.
    let mut gateway = Gateway::builder(app.url())
        .grace_period("30s")
        .start()
        .await;
    let mark = gateway.log().len();
    let (status, took) = gateway.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let after = lines_after(&gateway.log(), mark);
    assert_eq!(after.len(), 1, "{after:#?}");
    assert!(
        after[0].contains("hookgate stopped") && after[0].contains("SIGTERM"),
        "{after:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_request_under_way_finish_then_stops() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_millis(1500));
    let mut gateway = Gateway::builder(app.url())
        .grace_period("30s")
        .start()
        .await;
    let url = gateway.url("/hooks/test");
    let under_way = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(url)
            .body("{}")
            .send()
            .await
            .unwrap();
        let close = response.headers().get("connection").cloned();
        (response.status().as_u16(), close)
    });
    app.wait_for(1).await;
    let (status, took) = tokio::task::block_in_place(|| gateway.terminate(Duration::from_secs(10)));
    assert!(status.success(), "{status}");
    let (answer, connection) = under_way.await.unwrap();
    assert_eq!(answer, 200, "the request under way was answered");
    // Stopping, the connection is not kept alive for a next request.
    assert_eq!(connection.unwrap(), "close");
    // It waited for the app (about 1.5 s), not for the 30 s grace period.
    assert!(took >= Duration::from_millis(1000), "took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(gateway
        .log()
        .contains("SIGTERM: finishing what is under way"));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_never_contain_secrets() {
    const SECRET: &str = "very-secret-value";
    const REDIS_PASSWORD: &str = "redis-password-4f1";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let port_arg = port.to_string();
    let _redis = RedisServer::start(
        dir.path(),
        port,
        &["--port", &port_arg, "--requirepass", REDIS_PASSWORD],
    );
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .redis(&format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"), "logs:")
        .routes("    - { name: test, path: /hooks/test, verify: { scheme: rejento, secrets: [\"${TEST_SECRET}\"] }, dedupe: { id: \"header:X-Rejento-Delivery-Id\" } }\n")
        .env("TEST_SECRET", SECRET)
        .env("HOOKGATE_LOG_FORMAT", "json")
        .env("HOOKGATE_LOG", "trace")
        .start()
        .await;
    let client = reqwest::Client::new();
    let url = gateway.url("/hooks/test");
    let body = br#"{"event":"candidate.created"}"#;
    // Every path that uses a secret: a forged signature, a good one (claimed in Redis with
    // the password), the admin API with its token, and an unrouted path.
    let forged = vec![("X-Rejento-Signature".to_string(), "00".repeat(32))];
    assert_eq!(post(&client, &url, &forged, body).await.status(), 401);
    let good = sign("rejento", SECRET, "d-1", body, None);
    assert_eq!(post(&client, &url, &good, body).await.status(), 200);
    let (status, _) = gateway
        .admin(reqwest::Method::GET, "/admin/deliveries")
        .await;
    assert_ne!(status, 401, "the token was accepted");
    client.post(gateway.url("/nowhere")).send().await.unwrap();
    eventually(
        "the rejection is logged",
        Duration::from_secs(5),
        async || gateway.log().contains("route_not_found"),
    )
    .await;

    // `hookgate verify` with the secret and a wrong signature, at trace level too.
    let file = dir.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["verify", "--scheme", "rejento", "--secret", SECRET])
        .args(["-H", &format!("X-Rejento-Signature: {}", "11".repeat(32))])
        .arg(&file)
        .env("HOOKGATE_LOG", "trace")
        .output()
        .unwrap();
    assert!(!verify.status.success());

    let log = gateway.log();
    let mut lines = 0;
    for line in log.lines() {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if json["fields"]["error"] == "route_not_found" || line.contains("route_not_found") {
            assert_eq!(json["level"], "INFO", "{line}");
        }
        lines += 1;
    }
    assert!(lines >= 5, "only {lines} lines logged");
    let verify_output = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    for secret in [SECRET, REDIS_PASSWORD, ADMIN_TOKEN] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(
            !verify_output.contains(secret),
            "{secret} in: {verify_output}"
        );
    }
}

/// The console's "why did this webhook not arrive": the last refusals, with the delivery id
/// the request claimed and the names of its headers, never a signature or a body.
#[tokio::test(flavor = "multi_thread")]
async fn recent_refusals_say_why_without_secrets() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [s3cret] } }\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let body = br#"{"event":"candidate.created","note":"<script>alert(1)</script>"}"#;
    let mut forged = sign("rejento", "not-the-secret", "dlv_forged_1", body, None);
    forged.push(("X-Trace-Me".into(), "value-never-kept".into()));
    let url = gateway.url("/hooks/rejento");
    assert_eq!(post(&client, &url, &forged, body).await.status(), 401);
    let good = sign("rejento", "s3cret", "dlv_good", body, None);
    assert_eq!(post(&client, &url, &good, body).await.status(), 200);
    assert_eq!(
        post(&client, &gateway.url("/nowhere"), &[], b"")
            .await
            .status(),
        404
    );

    // A refusal is kept just after its answer is sent: wait for the last one.
    let mut answer = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, json) = gateway.admin(reqwest::Method::GET, "/admin/refusals").await;
        assert_eq!(status, 200, "{json}");
        answer = json;
        if answer["refusals"].as_array().is_some_and(|l| l.len() >= 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(answer["kept"], 500);
    let list = answer["refusals"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{answer}");
    assert_eq!(list[0]["reason"], "route_not_found");
    assert_eq!(list[0]["route"], "_unmatched");
    let forged = &list[1];
    assert_eq!(forged["reason"], "invalid_signature");
    assert_eq!(forged["route"], "rejento");
    assert_eq!(forged["status"], 401);
    assert_eq!(forged["source"], "127.0.0.1");
    assert_eq!(forged["delivery_id"], "dlv_forged_1");
    let headers: Vec<&str> = forged["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(
        headers.contains(&"x-rejento-signature") && headers.contains(&"x-trace-me"),
        "{headers:?}"
    );
    let text = answer.to_string();
    for kept_out in ["value-never-kept", "script", "s3cret"] {
        assert!(!text.contains(kept_out), "{kept_out} in {text}");
    }
    let signature = &sign("rejento", "not-the-secret", "dlv_forged_1", body, None)[0].1;
    assert!(!text.contains(signature.as_str()));

    let (_, filtered) = gateway
        .admin(
            reqwest::Method::GET,
            "/admin/refusals?reason=invalid_signature&route=rejento",
        )
        .await;
    assert_eq!(filtered["refusals"].as_array().unwrap().len(), 1);
    let (_, limited) = gateway
        .admin(reqwest::Method::GET, "/admin/refusals?limit=1")
        .await;
    assert_eq!(limited["refusals"][0]["reason"], "route_not_found");
    let (status, bad) = gateway
        .admin(reqwest::Method::GET, "/admin/refusals?limit=0")
        .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_limit"))
    );
    let anonymous = client
        .get(gateway.admin_url("/admin/refusals"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// At the default level every kind of refusal shows in the log, once a second per route
/// and reason (all are counted), in plain values.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_logged_once_a_second_per_route_and_reason() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [s3cret] } }\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let body = br#"{"event":"candidate.created"}"#;
    let forged = sign("rejento", "not-the-secret", "dlv_forged", body, None);
    let url = gateway.url("/hooks/rejento");
    for _ in 0..6 {
        assert_eq!(post(&client, &url, &forged, body).await.status(), 401);
    }
    assert_eq!(
        post(&client, &gateway.url("/nowhere"), &[], b"")
            .await
            .status(),
        404
    );
    eventually("both refusals logged", Duration::from_secs(2), async || {
        let log = gateway.log();
        log.contains("invalid_signature") && log.contains("route_not_found")
    })
    .await;
    let log = gateway.log();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("refused: ")).collect();
    assert_eq!(refused.len(), 2, "one line per route and reason:\n{log}");
    assert!(
        refused
            .iter()
            .all(|l| !l.contains("Some(") && !l.contains("s3cret")),
        "{log}"
    );
}
