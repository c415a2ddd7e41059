//! Findings 2 and 8 of the hardening review: idle, trickling and malformed clients, and a
//! flood of connections. Each gets a clear answer or a bounded wait, and the admin port
//! keeps answering.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{raw_exchange, Gateway, TestApp};

const TIGHT: &str = "  header_timeout: 1s\n  idle_timeout: 2s\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_head_trickled_one_byte_at_a_time_gets_408_at_the_header_timeout() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).inbound(TIGHT).start().await;
    let inbound = gateway.inbound;
    let (answer, took) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(inbound).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let started = Instant::now();
        let mut seen = Vec::new();
        for byte in b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            let mut buf = [0u8; 1024];
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        (
            String::from_utf8_lossy(&seen).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("\"header_timeout\""), "{answer}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(app.received().is_empty());
    gateway
        .metrics_eventually(
            "hookgate_inbound_connections_closed_total{reason=\"header_timeout\"} 1",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_and_idle_connections_are_closed() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).inbound(TIGHT).start().await;
    let inbound = gateway.inbound;
    let silent = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = raw_exchange(inbound, b"", Duration::from_secs(10));
        (answer, started.elapsed())
    });
    // Kept alive after one request, then idle: closed after idle_timeout, without an answer.
    let idle = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = raw_exchange(
            inbound,
            b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            Duration::from_secs(10),
        );
        (answer, started.elapsed())
    });
    let (answer, took) = silent.join().unwrap();
    assert!(
        took < Duration::from_secs(3),
        "a silent connection stayed {took:?}"
    );
    assert_eq!(answer, "", "nothing was asked, so nothing is answered");
    let (answer, took) = idle.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "an idle kept-alive connection stayed {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_get_503_and_the_admin_port_keeps_answering() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .inbound("  max_connections: 20\n  max_connections_per_ip: 10\n  header_timeout: 30s\n")
        .start()
        .await;
    // Ten silent connections take this address's share.
    let held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(gateway.inbound).unwrap())
        .collect();
    let metrics = gateway
        .metrics_eventually("hookgate_inbound_connections 10")
        .await;
    assert!(metrics.contains("hookgate_inbound_connections 10"));
    let answer = raw_exchange(
        gateway.inbound,
        b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("\"too_many_connections\""), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    let health = reqwest::get(gateway.admin_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    gateway
        .metrics_eventually(
            "hookgate_inbound_connections_closed_total{reason=\"max_connections_per_ip\"} 1",
        )
        .await;
    // Their places come back when they close.
    drop(held);
    gateway.until_admitted(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_heads_get_a_json_400_not_a_closed_connection() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let url_of = |len: usize| {
        format!(
            "POST /hooks/test?{} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "a".repeat(len)
        )
        .into_bytes()
    };
    let long_url = url_of(1 << 20);
    let many_headers = format!(
        "POST /hooks/test HTTP/1.1\r\nHost: x\r\n{}Content-Length: 0\r\n\r\n",
        (0..10_000)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"\x16\x03\x01garbage\r\n\r\n".to_vec(), "400"),
        (
            "negative length",
            b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "non-numeric length",
            b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "two lengths",
            b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            "400",
        ),
        (
            "obs-fold",
            b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "bare CR",
            b"POST /hooks/test HTTP/1.1\r\nHost: x\rX-A: 1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "NUL in a header",
            b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "400",
        ),
        // Refused once the request line is past the cap, without reading the rest.
        ("a 1 MiB URL", long_url, "414"),
        ("a 16 KiB URL", url_of(16 << 10), "414"),
        ("10,000 headers", many_headers.into_bytes(), "431"),
    ];
    for (name, request, status) in cases {
        let answer = raw_exchange(gateway.inbound, &request, Duration::from_secs(5));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: expected {status}, got {answer:?}"
        );
        assert!(answer.contains("\"error\":"), "{name}: {answer}");
    }
    assert!(app.received().is_empty(), "{:?}", app.received());
    let health = reqwest::get(gateway.admin_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_all_answered_in_order() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let mut requests = Vec::new();
    for i in 0..3 {
        requests.extend_from_slice(
            format!("POST /hooks/test HTTP/1.1\r\nHost: x\r\nX-Delivery: p-{i}\r\nContent-Length: 2\r\n\r\n{{}}")
                .as_bytes(),
        );
    }
    requests.extend_from_slice(
        b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nX-Delivery: p-3\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let answer = raw_exchange(gateway.inbound, &requests, Duration::from_secs(5));
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 4, "{answer}");
    let ids: Vec<String> = app
        .received()
        .iter()
        .map(|r| r.header("x-delivery").unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, ["p-0", "p-1", "p-2", "p-3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_still_sending_an_oversized_body_reads_the_413() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let inbound = gateway.inbound;
    let answers = tokio::task::spawn_blocking(move || {
        let body = vec![b'x'; 2 << 20];
        (0..20)
            .map(|_| {
                let mut stream = TcpStream::connect(inbound).unwrap();
                write!(
                    stream,
                    "POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .unwrap();
                // Sends the whole body before reading, as most HTTP clients do: a reset
                // while sending is as much a lost answer as one while reading.
                if let Err(e) = stream.write_all(&body) {
                    return format!("sending the body failed: {e}");
                }
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                String::from_utf8_lossy(&answer).into_owned()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for answer in answers {
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
        assert!(answer.contains("\"body_too_large\""), "{answer}");
    }
    assert!(app.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_http2_is_still_told_apart_from_http1_by_its_preface() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let url = gateway.url("/hooks/test");
    let curl = |extra: &[&str]| {
        let output = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .args(extra)
            .args(["-X", "POST", "-d", "{}", &url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(curl(&["--http2-prior-knowledge"]), "2 200");
    assert_eq!(curl(&["--http1.1"]), "1.1 200");
    assert_eq!(app.received().len(), 2);
}
