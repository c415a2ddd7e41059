//! The inbound proxy end to end: real hookgate binary, real app, real HTTP client.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{free_port, read_until, Gateway, TestApp};

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_reach_the_app_byte_for_byte_with_content_length_and_chunked() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let client = reqwest::Client::new();
    let sizes = [0, 1024, 60 * 1024, 1 << 20];
    for (i, len) in sizes.into_iter().enumerate() {
        let body = body_of(len);
        let response = client
            .post(gateway.url("/hooks/test?attempt=1"))
            .header("X-Delivery", format!("cl-{i}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-app"], "test-app");
        assert_eq!(response.text().await.unwrap(), "app says hi");

        // Chunked: a streamed body of unknown length, in uneven pieces.
        let pieces: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(7_777)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let response = client
            .post(gateway.url("/hooks/test?attempt=1"))
            .header("X-Delivery", format!("chunked-{i}"))
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                pieces,
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let received = app.received();
    assert_eq!(received.len(), 8);
    for (i, len) in sizes.into_iter().enumerate() {
        for (j, framing) in ["cl", "chunked"].iter().enumerate() {
            let r = &received[i * 2 + j];
            assert_eq!(
                r.header("x-delivery"),
                Some(format!("{framing}-{i}").as_str())
            );
            assert_eq!(r.body.len(), len, "{framing} body of {len} bytes");
            assert!(
                r.body == body_of(len),
                "{framing} body of {len} bytes changed on the way"
            );
            assert_eq!(r.method, "POST");
            assert_eq!(r.uri, "/hooks/test?attempt=1");
            assert_eq!(r.header("hookgate-route"), Some("test"));
            assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"));
            assert_eq!(
                r.header("transfer-encoding"),
                None,
                "the app gets a Content-Length body"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let body = body_of(1 << 20);
    let inbound = gateway.inbound;
    let body_for_client = body.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(inbound).unwrap();
        write!(
            stream,
            "POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body_for_client.len()
        )
        .unwrap();
        let interim = read_until(&mut stream, Duration::from_secs(2), |s| s.contains("\r\n\r\n"));
        assert!(interim.starts_with("HTTP/1.1 100 Continue"), "got {interim:?}");
        stream.write_all(&body_for_client).unwrap();
        read_until(&mut stream, Duration::from_secs(5), |s| s.contains("app says hi"))
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "got {answer:?}");
    let received = app.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].body == body);
    assert_eq!(
        received[0].header("expect"),
        None,
        "hookgate answered Expect itself"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_get_404_json_and_never_reach_the_app() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let response = reqwest::Client::new()
        .post(gateway.url("/hooks/unknown"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "route_not_found");
    assert_eq!(json["message"], "no route is configured for /hooks/unknown");
    assert!(app.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_most_specific_route_wins() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes(
            "    - { name: everything, path: /hooks/*, verify: none }\n    - { name: github, path: /hooks/github, verify: none }\n",
        )
        .start()
        .await;
    let client = reqwest::Client::new();
    for path in ["/hooks/github", "/hooks/stripe/live", "/hooks"] {
        let status = client
            .post(gateway.url(path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
    let routes: Vec<_> = app
        .received()
        .iter()
        .map(|r| r.header("hookgate-route").unwrap().to_string())
        .collect();
    assert_eq!(routes, ["github", "everything", "everything"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_cannot_forge_hookgate_headers() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    reqwest::Client::new()
        .post(gateway.url("/hooks/test"))
        .header("Hookgate-Verified", "stripe")
        .header("Hookgate-Route", "admin")
        .send()
        .await
        .unwrap();
    let received = app.received();
    assert_eq!(received[0].header("hookgate-verified"), Some("none"));
    assert_eq!(received[0].header("hookgate-route"), Some("test"));
}

#[tokio::test(flavor = "multi_thread")]
async fn app_statuses_are_relayed() {
    let app = TestApp::start().await;
    app.respond_with(503, Duration::ZERO);
    let gateway = Gateway::builder(app.url()).start().await;
    let response = reqwest::Client::new()
        .post(gateway.url("/hooks/test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "app says hi");
}

#[tokio::test(flavor = "multi_thread")]
async fn app_down_gives_502_quickly() {
    let gateway = Gateway::builder(format!("http://127.0.0.1:{}", free_port()))
        .start()
        .await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(gateway.url("/hooks/test"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 502);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "upstream_unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_app_gives_504_after_the_upstream_timeout() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_secs(5));
    let gateway = Gateway::builder(app.url())
        .inbound("  upstream_timeout: 300ms\n")
        .start()
        .await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(gateway.url("/hooks/test"))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "took {elapsed:?}"
    );
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "upstream_timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_max_body_get_413_and_never_reach_the_app() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .inbound("  max_body: 1KiB\n")
        .routes("    - { name: test, path: /hooks/test, verify: none }\n    - { name: big, path: /hooks/big, verify: none, max_body: 4KiB }\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let response = client
        .post(gateway.url("/hooks/test"))
        .body(body_of(1025))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "body_too_large");
    // Chunked bodies have no declared length: the limit applies while reading.
    let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(body_of(1000))),
        Ok(Bytes::from(body_of(1000))),
    ];
    let response = client
        .post(gateway.url("/hooks/test"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(app.received().is_empty());
    // A route's own max_body overrides the inbound default.
    let response = client
        .post(gateway.url("/hooks/big"))
        .body(body_of(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_senders_get_408() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .inbound("  body_timeout: 300ms\n")
        .start()
        .await;
    let inbound = gateway.inbound;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(inbound).unwrap();
        stream
            .write_all(
                b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
            )
            .unwrap();
        read_until(&mut stream, Duration::from_secs(3), |s| s.contains("}"))
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "got {answer:?}");
    assert!(
        answer.contains("\"error\":\"body_timeout\""),
        "got {answer:?}"
    );
    assert!(app.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_connections_carry_many_requests() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let client = reqwest::Client::new();
    for i in 0..20 {
        let response = client
            .post(gateway.url("/hooks/test"))
            .body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let bodies: Vec<_> = app.received().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 20);
    assert_eq!(bodies[19], Bytes::from("{\"n\":19}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_request_gets_the_apps_head_answer_without_waiting_for_a_body() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let started = Instant::now();
        let response = client
            .head(gateway.url("/hooks/test"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // The app announces the length of the body a GET would get.
        assert_eq!(response.headers()["content-length"], "11");
        assert!(response.bytes().await.unwrap().is_empty());
        assert!(started.elapsed() < Duration::from_secs(2), "HEAD hung");
        // The next request, on the same connections, is not confused by the HEAD.
        let response = client
            .post(gateway.url("/hooks/test"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "app says hi");
    }
    let methods: Vec<String> = app.received().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["HEAD", "POST", "HEAD", "POST"]);
}
