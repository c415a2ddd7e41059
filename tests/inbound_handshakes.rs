//! Providers' ownership checks (`handshake:`), answered by hookgate with the route's secret
//! while the app is down, never forwarded; expected answers are computed with Python's
//! `hmac` or taken from the providers' published examples.

mod support;

use std::process::Command;

use support::{free_port, post, sign, Gateway};

const ROUTES: &str = r#"    - { name: slack, path: /hooks/slack, verify: { scheme: slack, secrets: [slack-secret] }, handshake: slack }
    - { name: zoom, path: /hooks/zoom, verify: { scheme: zoom, secrets: [zoom_secret_token] }, handshake: zoom }
    - { name: x, path: /hooks/x, verify: { scheme: hmac, header: x-twitter-webhooks-signature, encoding: base64, prefix: "sha256=", secrets: [x-consumer-secret] }, handshake: x }
    - { name: meta, path: /hooks/meta, verify: { scheme: hmac, header: x-hub-signature-256, prefix: "sha256=", secrets: [meta-app-secret] }, handshake: meta, verify_token: "${META_VERIFY_TOKEN}" }
    - { name: dropbox, path: /hooks/dropbox, verify: { scheme: hmac, header: x-dropbox-signature, secrets: [dropbox-secret] }, handshake: dropbox }
    - { name: msgraph, path: /hooks/msgraph, verify: none, handshake: msgraph }
    - { name: okta, path: /hooks/okta, verify: { scheme: bearer, secrets: [okta-token] }, handshake: okta }
"#;

/// A gateway with one route per handshake, in front of an app that is down.
async fn gateway() -> Gateway {
    Gateway::builder(format!("http://127.0.0.1:{}", free_port()))
        .routes(ROUTES)
        .env("META_VERIFY_TOKEN", "meta-token-42")
        .start()
        .await
}

/// HMAC-SHA256 of `message` under `key` by Python's standard library, as hex or base64.
fn python_hmac(key: &str, message: &str, base64: bool) -> String {
    let output = Command::new("python3")
        .args([
            "-c",
            "import base64, hashlib, hmac, sys\n\
             mac = hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).digest()\n\
             print(base64.b64encode(mac).decode() if sys.argv[3] == 'b64' else mac.hex())",
            key,
            message,
            if base64 { "b64" } else { "hex" },
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

struct Answer {
    status: u16,
    content_type: String,
    nosniff: bool,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    Answer {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        nosniff: header("x-content-type-options") == "nosniff",
        body: response.text().await.unwrap(),
    }
}

fn json(answer: &Answer) -> serde_json::Value {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json");
    serde_json::from_str(&answer.body).unwrap()
}

fn text(answer: &Answer) -> &str {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("text/plain"));
    assert!(answer.nosniff);
    &answer.body
}

#[tokio::test(flavor = "multi_thread")]
async fn each_handshake_is_answered_with_the_secret_while_the_app_is_down() {
    let gateway = gateway().await;
    let client = reqwest::Client::new();

    // Slack: a signed url_verification body; the challenge comes back as JSON.
    let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let headers = sign("slack", "slack-secret", "", body, None);
    let answer = send(signed(
        &client,
        &gateway.url("/hooks/slack"),
        &headers,
        body,
    ))
    .await;
    assert_eq!(
        json(&answer),
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );

    // Zoom: the published example's plain token and encrypted token (tests/data/vectors.json).
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("data/vectors.json")).unwrap();
    let published = vectors["derived_stdlib_python_and_node_agree"]
        ["zoom_url_validation(plainToken='qgg8vlvZRS6UYooatFL8Aw')"]
        .as_str()
        .unwrap();
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let headers = sign("zoom", "zoom_secret_token", "", body, None);
    let answer = send(signed(&client, &gateway.url("/hooks/zoom"), &headers, body)).await;
    assert_eq!(
        json(&answer),
        serde_json::json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": published})
    );

    // X: GET ?crc_token, answered with sha256=base64(HMAC) under the consumer secret.
    let token = "crc-4b7f0e2e+/=";
    let answer = send(
        client
            .get(gateway.url("/hooks/x"))
            .query(&[("crc_token", token)]),
    )
    .await;
    let expected = format!("sha256={}", python_hmac("x-consumer-secret", token, true));
    assert_eq!(
        json(&answer),
        serde_json::json!({ "response_token": expected })
    );

    // Meta: the challenge as text when the verify token matches, 403 when it does not.
    let meta = |token: &str| {
        client.get(gateway.url("/hooks/meta")).query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", token),
            ("hub.challenge", "1158201444"),
        ])
    };
    assert_eq!(text(&send(meta("meta-token-42")).await), "1158201444");
    let forged = send(meta("guessed")).await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("handshake_refused"), "{}", forged.body);
    assert!(!forged.body.contains("meta-token-42"));

    // Dropbox: the challenge echoed as text with nosniff, even when it looks like HTML.
    let answer = send(
        client
            .get(gateway.url("/hooks/dropbox"))
            .query(&[("challenge", "<script>alert(1)</script>")]),
    )
    .await;
    assert_eq!(text(&answer), "<script>alert(1)</script>");

    // Microsoft Graph: POST ?validationToken=..., answered URL-decoded as text.
    let graph_token = "Validation: Testing client application reachability for subscription Request-Id: 1f1d2c45-0c1a-4b1e-9c1a-7d2e2f3a4b5c";
    let answer = send(
        client
            .post(gateway.url("/hooks/msgraph"))
            .query(&[("validationToken", graph_token)]),
    )
    .await;
    assert_eq!(text(&answer), graph_token);

    // Okta: the challenge header, with the route's credentials; a forged one is refused.
    let okta = |token: &str| {
        client
            .get(gateway.url("/hooks/okta"))
            .header("authorization", format!("Bearer {token}"))
            .header("x-okta-verification-challenge", "okta-challenge-1")
    };
    assert_eq!(
        json(&send(okta("okta-token")).await),
        serde_json::json!({"verification": "okta-challenge-1"})
    );
    assert_eq!(send(okta("forged")).await.status, 401);

    let metrics = gateway.metrics().await;
    for provider in ["slack", "zoom", "x", "meta", "dropbox", "msgraph", "okta"] {
        let series = format!(
            "hookgate_inbound_handshakes_total{{route=\"{provider}\",provider=\"{provider}\",outcome=\"answered\"}} 1"
        );
        assert!(metrics.contains(&series), "{series} not in\n{metrics}");
    }
    assert!(metrics.contains(
        "hookgate_inbound_handshakes_total{route=\"meta\",provider=\"meta\",outcome=\"refused\"} 1"
    ));
    for secret in ["meta-token-42", "x-consumer-secret", "zoom_secret_token"] {
        assert!(!gateway.log().contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_oversized_handshakes_are_refused() {
    let gateway = gateway().await;
    let client = reqwest::Client::new();

    // Signed with another secret: refused by verify like any forgery, nothing echoed.
    let body = br#"{"type":"url_verification","challenge":"forged-challenge"}"#;
    let headers = sign("slack", "not-the-secret", "", body, None);
    let answer = send(signed(
        &client,
        &gateway.url("/hooks/slack"),
        &headers,
        body,
    ))
    .await;
    assert_eq!(answer.status, 401);
    assert!(!answer.body.contains("forged-challenge"));
    let body = br#"{"payload":{"plainToken":"forged"},"event":"endpoint.url_validation"}"#;
    let headers = sign("zoom", "not-the-secret", "", body, None);
    let answer = send(signed(&client, &gateway.url("/hooks/zoom"), &headers, body)).await;
    assert_eq!(answer.status, 401);

    // Over 1,024 bytes, or holding a control character: refused, not echoed.
    let long = "a".repeat(1025);
    let answer = send(
        client
            .get(gateway.url("/hooks/x"))
            .query(&[("crc_token", &long)]),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body.contains("handshake_too_long"),
        "{}",
        answer.body
    );
    let answer = send(
        client
            .get(gateway.url("/hooks/dropbox"))
            .query(&[("challenge", "a\r\nSet-Cookie: x=1")]),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("invalid_handshake"), "{}", answer.body);
    let body = format!(
        r#"{{"type":"url_verification","challenge":"{}"}}"#,
        "c".repeat(1025)
    );
    let headers = sign("slack", "slack-secret", "", body.as_bytes(), None);
    let answer = send(signed(
        &client,
        &gateway.url("/hooks/slack"),
        &headers,
        body.as_bytes(),
    ))
    .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body.contains("handshake_too_long"),
        "{}",
        answer.body
    );

    // A challenge given twice, or not UTF-8 once decoded: refused, never read as absent.
    for target in [
        "/hooks/dropbox?challenge=a&challenge=b",
        "/hooks/msgraph?validationToken=%FF",
    ] {
        let request = if target.contains("msgraph") {
            client.post(gateway.url(target))
        } else {
            client.get(gateway.url(target))
        };
        let answer = send(request).await;
        assert_eq!(answer.status, 400, "{target}");
        assert!(answer.body.contains("invalid_handshake"), "{}", answer.body);
    }
    // A GET without the handshake's parameters is an ordinary unsigned request: refused.
    let answer = send(client.get(gateway.url("/hooks/dropbox"))).await;
    assert_eq!(answer.status, 401);
    // An ordinary signed webhook is not a handshake: it goes on to the (down) app.
    let body = br#"{"type":"event_callback","event":{"type":"message"}}"#;
    let headers = sign("slack", "slack-secret", "", body, None);
    let response = post(&client, &gateway.url("/hooks/slack"), &headers, body).await;
    assert_eq!(response.status().as_u16(), 502);
}

#[test]
fn check_refuses_a_handshake_its_route_cannot_answer() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "verify: none, handshake: slack",
            "handshake: slack needs verify with scheme slack",
        ),
        (
            "verify: { scheme: slack, secrets: [s] }, handshake: zoom",
            "handshake: zoom needs verify with scheme zoom",
        ),
        ("verify: none, handshake: x", "handshake: x needs verify"),
        (
            "verify: none, handshake: meta",
            "handshake: meta needs verify_token",
        ),
        (
            "verify: none, handshake: dropbox, verify_token: t",
            "verify_token is only for handshake: meta",
        ),
        (
            "verify: none, handshake: teams",
            "expected one of slack, zoom, x, meta, dropbox, msgraph, okta",
        ),
    ];
    for (route, error) in cases {
        let file = dir.path().join("hookgate.yaml");
        std::fs::write(
            &file,
            format!(
                "inbound:\n  listen: 127.0.0.1:0\n  upstream: http://127.0.0.1:1\n  routes:\n    - {{ name: r, path: /r, {route} }}\n"
            ),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["check", "-c", file.to_str().unwrap()])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{route} passed check");
        assert!(said.contains(error), "{route}: {said}");
    }
}

fn signed(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> reqwest::RequestBuilder {
    let mut request = client.post(url).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
}
