//! Headers the app can trust: a client's `Hookgate_Verified` or `X_Forwarded_For` never
//! reaches a CGI-style app (which reads `_` as `-`) as hookgate's own; request heads
//! without `Host` or with bare LF line ends are refused; and rate-limit keys of any
//! length take a fixed amount of memory, with a cap on how many a route holds.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{free_port, raw_exchange, wait_until_listening, Gateway};

/// Python's wsgiref answering with the `HTTP_*` variables it saw; killed when dropped.
struct CgiApp {
    child: Child,
    port: u16,
}

impl CgiApp {
    fn start() -> Self {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/cgi_app.py");
        let child = Command::new("python3")
            .args([script, &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_listening(port);
        CgiApp { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for CgiApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const FORGED: [(&str, &str); 6] = [
    ("Hookgate_Verified", "rejento"),
    ("Hookgate_Route", "admin"),
    ("Hookgate_Delivery_Id", "forged-id"),
    ("X_Forwarded_For", "10.0.0.1"),
    ("X-Forwarded_Proto", "https"),
    ("X_Custom", "kept only when allowed"),
];

/// What the CGI app saw of a POST to `path`, sent with the forged headers over HTTP/1.1.
async fn seen(gateway: &Gateway, path: &str) -> Value {
    let mut request = reqwest::Client::new().post(gateway.url(path)).body("{}");
    for (name, value) in FORGED {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn underscored_names_never_reach_a_cgi_app_as_hookgates_headers() {
    let app = CgiApp::start();
    let gateway = Gateway::builder(app.url())
        .routes(
            "    - { name: strict, path: /hooks/strict, verify: none }\n    - { name: lenient, path: /hooks/lenient, verify: none, allow_underscore_headers: true }\n",
        )
        .start()
        .await;
    for path in ["/hooks/strict", "/hooks/lenient"] {
        let env = seen(&gateway, path).await;
        // Only hookgate's own values: no forged value merged in with a comma.
        assert_eq!(env["HTTP_HOOKGATE_VERIFIED"], "none", "{path}: {env}");
        assert_eq!(env["HTTP_HOOKGATE_ROUTE"], &path[7..], "{path}: {env}");
        assert!(
            env.get("HTTP_HOOKGATE_DELIVERY_ID").is_none(),
            "{path}: {env}"
        );
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{path}: {env}");
        assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "http", "{path}: {env}");
        let custom = env.get("HTTP_X_CUSTOM").and_then(Value::as_str);
        let expected = (path == "/hooks/lenient").then_some("kept only when allowed");
        assert_eq!(custom, expected, "{path}: {env}");
    }
    // The same over h2 (prior knowledge), whose header names arrive in lowercase.
    let mut curl = Command::new("curl");
    curl.args(["-s", "--http2-prior-knowledge", "-X", "POST", "-d", "{}"]);
    for (name, value) in FORGED {
        curl.args(["-H", &format!("{name}: {value}")]);
    }
    let out = curl.arg(gateway.url("/hooks/strict")).output().unwrap();
    let env: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(env["HTTP_HOOKGATE_VERIFIED"], "none", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
    assert!(env.get("HTTP_HOOKGATE_DELIVERY_ID").is_none(), "{env}");
    assert!(env.get("HTTP_X_CUSTOM").is_none(), "{env}");
}

#[tokio::test(flavor = "multi_thread")]
async fn heads_without_host_or_with_bare_lf_are_refused() {
    let app = support::TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    for head in [
        "POST /hooks/test HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        "POST /hooks/test HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}",
        "POST /hooks/test HTTP/1.1\r\nHost: x\nContent-Length: 2\r\n\r\n{}",
        "POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\n{}",
    ] {
        let answer = raw_exchange(gateway.inbound, head.as_bytes(), Duration::from_secs(3));
        assert!(answer.starts_with("HTTP/1.1 400"), "{head:?}: {answer}");
        assert!(answer.contains("\"error\":\"bad_request\""), "{answer}");
    }
    // HTTP/1.0 has no Host requirement; CRLF heads with Host pass.
    for head in [
        "POST /hooks/test HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
        "POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    ] {
        let answer = raw_exchange(gateway.inbound, head.as_bytes(), Duration::from_secs(3));
        assert!(answer.starts_with("HTTP/1.1 200"), "{head:?}: {answer}");
    }
    assert_eq!(app.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_rate_limit_keys_take_bounded_memory_and_a_route_holds_at_most_max_keys() {
    let app = support::TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes(
            "    - { name: test, path: /hooks/test, verify: none, rate_limit: { key: \"header:X-Key\", limit: 1/h } }\n    - { name: capped, path: /hooks/capped, verify: none, rate_limit: { key: \"header:X-Key\", limit: 1/h, max_keys: 50 } }\n",
        )
        .start()
        .await;
    let client = reqwest::Client::new();
    let (_, rss_before) = gateway.resources();
    // 3,000 keys of 60 KB: their values would hold 180 MB.
    let filler = "k".repeat(60_000);
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (client, url, filler) = (client.clone(), gateway.url("/hooks/test"), filler.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..750 {
                let key = format!("{worker}-{i}-{filler}");
                let response = client
                    .post(&url)
                    .header("X-Key", key)
                    .body("{}")
                    .send()
                    .await;
                assert_eq!(response.unwrap().status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (_, rss_after) = gateway.resources();
    let grown_mb = rss_after.saturating_sub(rss_before) / 1024;
    eprintln!("RSS {} -> {} MB", rss_before / 1024, rss_after / 1024);
    assert!(grown_mb < 40, "RSS grew by {grown_mb} MB for 3,000 keys");
    // The same key again is limited: a hashed key is still the key.
    let again = client
        .post(gateway.url("/hooks/test"))
        .header("X-Key", format!("0-0-{filler}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 429);

    for i in 0..50 {
        let response = client
            .post(gateway.url("/hooks/capped"))
            .header("X-Key", format!("key-{i}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let full = client
        .post(gateway.url("/hooks/capped"))
        .header("X-Key", "one-too-many")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 503);
    assert!(full.headers().contains_key("retry-after"));
    let answer: Value = full.json().await.unwrap();
    assert_eq!(answer["error"], "rate_limit_keys_full");
    gateway
        .metrics_eventually("hookgate_rate_limit_keys_full_total{route=\"capped\"} 1")
        .await;
    assert!(gateway.log().contains("rate limit keys at their cap"));
}
