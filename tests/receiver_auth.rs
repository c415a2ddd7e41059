//! Receivers that ask for more than a signature (`auth:`): an API-key header, Basic, and
//! OAuth2 client credentials from a real token endpoint (tests/data/oauth2_server.py),
//! with its cache, single flight, expiry, 401 and failures; and the values masked in
//! every answer and kept out of the log.

mod support;

use std::process::{Child, Command};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use support::{
    eventually, free_port, send_to_destination, wait_until_listening, Gateway, GatewayBuilder,
    TestApp,
};

const WITHIN: Duration = Duration::from_secs(10);
const CLIENT_SECRET: &str = "cs-Zx81 q&p";

/// The token endpoint and the receiver it protects, on one port; killed when dropped.
struct TokenServer {
    child: Child,
    port: u16,
}

impl TokenServer {
    fn start() -> Self {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/oauth2_server.py");
        let child = Command::new("python3")
            .args([script, &port.to_string(), "hookgate-client", CLIENT_SECRET])
            .spawn()
            .expect("python3 runs the token server");
        wait_until_listening(port);
        TokenServer { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn control(&self, change: Value) {
        let response = reqwest::Client::new()
            .post(self.url("/control"))
            .json(&change)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn stats(&self) -> Value {
        reqwest::get(self.url("/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Deliveries the receiver accepted, and those it refused (each with why).
    async fn hooks(&self) -> (usize, Vec<String>) {
        let stats = self.stats().await;
        let hooks = stats["hooks"].as_array().unwrap();
        let refused = hooks
            .iter()
            .filter_map(|h| h["refused"].as_str().map(str::to_string))
            .collect::<Vec<_>>();
        (hooks.len() - refused.len(), refused)
    }

    async fn token_requests(&self) -> u64 {
        self.stats().await["token_requests"].as_u64().unwrap()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway whose `acme` endpoint delivers to the token server's receiver with OAuth2.
fn with_oauth2(server: &TokenServer, timeout: &str) -> GatewayBuilder {
    let endpoint = format!(
        "    - {{ name: acme, url: \"{}\", sign: {{ scheme: rejento, secret: acme-secret }}, retry: {{ schedule: [50ms], max_attempts: 50, timeout: {timeout} }}, circuit: {{ failures: 1000 }}, auth: {{ oauth2: {{ token_url: \"{}\", client_id: hookgate-client, client_secret: \"${{TOKEN_CLIENT_SECRET}}\", scopes: [hooks:write, hooks:read] }} }} }}\n",
        server.url("/hook"),
        server.url("/token"),
    );
    Gateway::builder("http://127.0.0.1:9")
        .endpoints(&endpoint)
        .env("TOKEN_CLIENT_SECRET", CLIENT_SECRET)
}

async fn send(gateway: &Gateway, body: &str) -> String {
    let response = support::send_to_acme(gateway, body).await;
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    answer["delivery_id"].as_str().unwrap().to_string()
}

async fn send_many(gateway: &Gateway, count: usize) {
    let bodies: Vec<String> = (0..count).map(|i| format!("{{\"n\":{i}}}")).collect();
    futures_util::future::join_all(bodies.iter().map(|body| send(gateway, body))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_serves_concurrent_deliveries_until_it_expires_or_a_401_drops_it() {
    let server = TokenServer::start();
    let gateway = with_oauth2(&server, "5s").start().await;
    // Twenty at once: one fetch, which all of them wait for.
    send_many(&gateway, 20).await;
    eventually("20 deliveries are accepted", WITHIN, async || {
        server.hooks().await.0 == 20
    })
    .await;
    assert_eq!(server.token_requests().await, 1);
    let stats = server.stats().await;
    assert_eq!(stats["scopes"], json!(["hooks:write hooks:read"]));
    assert_eq!(stats["refused_clients"], 0);
    // The receiver revokes the token: the 401s drop it once, and the retries share the
    // one new token.
    server.control(json!({ "revoke": true })).await;
    send_many(&gateway, 10).await;
    eventually(
        "the 10 deliveries are retried and accepted",
        WITHIN,
        async || server.hooks().await.0 == 30,
    )
    .await;
    let (_, refused) = server.hooks().await;
    assert!(!refused.is_empty() && refused.iter().all(|why| why == "revoked"));
    assert_eq!(server.token_requests().await, 2);
    // Tokens that last 3 s are fetched again shortly before they expire, not after a 401.
    server
        .control(json!({ "expires_in": 3, "revoke": true }))
        .await;
    send(&gateway, "{}").await;
    eventually(
        "the delivery after the revocation is accepted",
        WITHIN,
        async || server.hooks().await.0 == 31,
    )
    .await;
    let (refused_before, tokens_before) =
        (server.hooks().await.1.len(), server.token_requests().await);
    eventually(
        "a token is fetched again before the last one expires",
        WITHIN,
        async || {
            send(&gateway, "{}").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            server.token_requests().await > tokens_before
        },
    )
    .await;
    let (_, refused) = server.hooks().await;
    assert_eq!(refused.len(), refused_before, "refused: {refused:?}");
    let metrics = gateway.metrics().await;
    assert!(metrics.contains("hookgate_outbound_oauth2_token_requests_total{outcome=\"ok\"}"));
    assert!(!gateway.log().contains(CLIENT_SECRET) && !gateway.log().contains("tok-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_that_fails_or_hangs_fails_the_attempt_clearly_then_recovers() {
    let server = TokenServer::start();
    let gateway = with_oauth2(&server, "500ms").start().await;
    let errors = async |id: &str| -> Vec<String> {
        let (status, delivery) = gateway
            .admin(Method::GET, &format!("/admin/deliveries/{id}"))
            .await;
        assert_eq!(status, 200, "{delivery}");
        delivery["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["error"].as_str().map(str::to_string))
            .collect()
    };
    server.control(json!({ "mode": "fail" })).await;
    let id = send(&gateway, "{}").await;
    eventually(
        "an attempt fails on the token endpoint's 503",
        WITHIN,
        async || {
            errors(&id).await.iter().any(|e| {
                e == "OAuth2 token endpoint 127.0.0.1: answered 503 (temporarily_unavailable)"
            })
        },
    )
    .await;
    server.control(json!({ "mode": "hang" })).await;
    eventually(
        "an attempt fails waiting for the token endpoint",
        WITHIN,
        async || {
            errors(&id)
                .await
                .iter()
                .any(|e| e == "no answer within 0.5s from the OAuth2 token endpoint")
        },
    )
    .await;
    assert_eq!(server.hooks().await.0, 0, "nothing reaches the receiver");
    server.control(json!({ "mode": "ok" })).await;
    eventually(
        "the delivery is accepted once tokens come",
        WITHIN,
        async || server.hooks().await.0 == 1,
    )
    .await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("hookgate_outbound_oauth2_token_requests_total{outcome=\"failed\"}"),
        "{metrics}"
    );
    assert!(!gateway.log().contains(CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn header_and_basic_auth_arrive_and_every_answer_masks_them() {
    let (keyed, basic, destination) = (
        TestApp::start().await,
        TestApp::start().await,
        TestApp::start().await,
    );
    let endpoint = support::acme_endpoint(
        &keyed,
        "/hooks",
        "auth: { headers: { X-Api-Key: \"${RECEIVER_KEY}\" } }",
    );
    let gateway = Gateway::builder("http://127.0.0.1:9")
        .endpoints(&endpoint)
        .outbound(
            "  allow_private_destinations: [127.0.0.0/8]\n  destinations: { auth: { headers: { X-Tenant-Key: dest-key-77 } } }\n",
        )
        .env("RECEIVER_KEY", "key-Qw3rty")
        .start()
        .await;
    // A configured endpoint's header.
    send(&gateway, "{}").await;
    keyed.wait_for(1).await;
    assert_eq!(keyed.received()[0].header("x-api-key"), Some("key-Qw3rty"));
    // A per-request destination gets outbound.destinations.auth.
    send_to_destination(&gateway, &(destination.url() + "/in"), "{}").await;
    destination.wait_for(1).await;
    assert_eq!(
        destination.received()[0].header("x-tenant-key"),
        Some("dest-key-77")
    );
    // A subscription's Basic, given through the API.
    let created = gateway
        .subscribe(json!({
            "url": basic.url() + "/hooks",
            "event_types": ["*"],
            "auth": { "basic": { "user": "user", "password": "pa ss" } },
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        created["auth"],
        json!({ "basic": { "user": "user", "password": "[masked]" } })
    );
    let (status, _) = gateway
        .publish(&[("Hookgate-Event-Type", "a.b")], "{}")
        .await;
    assert_eq!(status, 202);
    basic.wait_for(1).await;
    // base64("user:pa ss"), computed with Python's base64 module.
    assert_eq!(
        basic.received()[0].header("authorization"),
        Some("Basic dXNlcjpwYSBzcw==")
    );
    // Masked wherever the API shows it: the subscription, the list, the delivery.
    for path in [
        format!("/admin/subscriptions/{id}"),
        "/admin/subscriptions".to_string(),
        "/admin/deliveries?state=delivered".to_string(),
    ] {
        eventually("the answer shows the delivery", WITHIN, async || {
            let (status, answer) = gateway.admin(Method::GET, &path).await;
            let text = answer.to_string();
            assert_eq!(status, 200, "{text}");
            assert!(
                !text.contains("pa ss") && !text.contains("dXNlcjpwYSBzcw"),
                "{text}"
            );
            assert!(!text.contains("key-Qw3rty") && !text.contains("dest-key-77"));
            !path.contains("deliveries") || text.contains("\"authorization\",\"[masked]\"")
        })
        .await;
    }
    // The mask a client read back is refused, as is a bad auth, without echoing values.
    for (auth, field) in [
        (
            json!({ "basic": { "user": "user", "password": "[masked]" } }),
            "auth.basic.password",
        ),
        (
            json!({ "headers": { "Host": "secret-host-value" } }),
            "auth.headers.Host",
        ),
        (json!({ "basic": "secret-basic-value" }), "auth"),
    ] {
        let (status, answer) = gateway
            .admin_json(
                Method::PATCH,
                &format!("/admin/subscriptions/{id}"),
                &json!({ "auth": auth }),
            )
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_auth")),
            "{answer}"
        );
        assert_eq!(answer["field"], field);
        assert!(!answer.to_string().contains("secret-"), "{answer}");
    }
    let log = gateway.log();
    for secret in ["pa ss", "key-Qw3rty", "dest-key-77"] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ssrf_guard_covers_the_token_url() {
    let (app, server) = (TestApp::start().await, TokenServer::start());
    // The receiver's address is allowed; the token endpoint's 127.0.0.2 is not.
    let blocked = format!("http://127.0.0.2:{}/token", server.port);
    let gateway = Gateway::builder("http://127.0.0.1:9")
        .endpoints("    []\n")
        .outbound(&format!(
            "  allow_private_destinations: [127.0.0.1/32]\n  destinations: {{ retry: {{ schedule: [50ms], max_attempts: 1 }}, auth: {{ oauth2: {{ token_url: \"{blocked}\", client_id: c, client_secret: s }} }} }}\n"
        ))
        .start()
        .await;
    let (status, answer) = gateway
        .admin_json(
            Method::POST,
            "/admin/subscriptions",
            &json!({
                "url": app.url(),
                "event_types": ["*"],
                "auth": { "oauth2": { "token_url": blocked, "client_id": "c", "client_secret": "s" } },
            }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "auth.oauth2.token_url");
    let id = send_to_destination(&gateway, &app.url(), "{}").await;
    eventually(
        "the attempt is refused at the token URL",
        WITHIN,
        async || {
            let (_, delivery) = gateway
                .admin(Method::GET, &format!("/admin/deliveries/{id}"))
                .await;
            delivery["attempts"][0]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("refused: OAuth2 token endpoint 127.0.0.2:"))
        },
    )
    .await;
    assert_eq!(server.token_requests().await, 0);
    assert!(app.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn at_trace_level_no_auth_value_token_or_store_key_reaches_the_log() {
    let server = TokenServer::start();
    // 32 bytes of 0x07, encoded with Python's base64 module.
    let store_key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let endpoint = format!(
        "    - {{ name: acme, url: \"{}\", sign: {{ scheme: rejento, secret: acme-secret }}, auth: {{ headers: {{ X-Extra: extra-Hdr-4471 }}, oauth2: {{ token_url: \"{}\", client_id: hookgate-client, client_secret: \"${{TOKEN_CLIENT_SECRET}}\" }} }} }}\n",
        server.url("/hook"),
        server.url("/token"),
    );
    let gateway = Gateway::builder("http://127.0.0.1:9")
        .endpoints(&endpoint)
        .store_keys("encryption: { keys: [\"${STORE_KEY}\"] }")
        .env("TOKEN_CLIENT_SECRET", CLIENT_SECRET)
        .env("STORE_KEY", store_key)
        .env("HOOKGATE_LOG", "trace")
        .start()
        .await;
    send_many(&gateway, 5).await;
    eventually("the deliveries are accepted", WITHIN, async || {
        server.hooks().await.0 == 5
    })
    .await;
    let log = gateway.log();
    // The client's Basic credentials as the token endpoint gets them, and the token.
    let basic = "aG9va2dhdGUtY2xpZW50OmNzLVp4ODErcSUyNnA=";
    for secret in [CLIENT_SECRET, "tok-1", "extra-Hdr-4471", store_key, basic] {
        assert!(!log.contains(secret), "the trace log holds {secret}");
    }
    assert!(log.len() > 1000, "a trace log was written:\n{log}");
}
