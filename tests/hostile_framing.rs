//! Message framing on hookgate's own HTTP/1 (`src/inbound/http1/`): a request whose end a
//! front proxy and the app could read differently (request smuggling) is refused before
//! the app sees any of it, and every framing the RFC allows, on either side, arrives byte
//! for byte.

mod support;

use std::time::Duration;

use support::{raw_exchange, Gateway, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_framing_is_refused_and_nothing_is_smuggled() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let post = "POST /hooks/test HTTP/1.1\r\nHost: x\r\n";
    // Behind each request, a second one: answered only if hookgate misread the first's end.
    let smuggled = "GET /hooks/test?smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let chunked = "Transfer-Encoding: chunked\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "length and chunks",
            format!("{post}Content-Length: 5\r\n{chunked}0\r\n\r\n{smuggled}"),
        ),
        (
            "chunks and length",
            format!(
                "{post}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two equal lengths",
            format!("{post}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello{smuggled}"),
        ),
        (
            "a length list",
            format!("{post}Content-Length: 5, 5\r\n\r\nhello{smuggled}"),
        ),
        (
            "a signed length",
            format!("{post}Content-Length: +5\r\n\r\nhello{smuggled}"),
        ),
        (
            "a coding before chunked",
            format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "chunked twice",
            format!("{post}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "two Transfer-Encoding fields",
            format!("{post}Transfer-Encoding: chunked\r\n{chunked}0\r\n\r\n{smuggled}"),
        ),
        (
            "an unknown coding",
            format!("{post}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "chunked in HTTP/1.0",
            format!("POST /hooks/test HTTP/1.0\r\nHost: x\r\n{chunked}0\r\n\r\n{smuggled}"),
        ),
        (
            "a space before the colon",
            format!("{post}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "two Host fields",
            format!("{post}Host: y\r\nContent-Length: 0\r\n\r\n{smuggled}"),
        ),
        (
            "a chunk size that is not hexadecimal",
            format!("{post}{chunked}zz\r\nhello\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "a chunk size that overflows",
            format!("{post}{chunked}10000000000000005\r\nhello\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "chunk data longer than its size",
            format!("{post}{chunked}2\r\nhello\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "a chunk line ended by a bare LF",
            format!("{post}{chunked}5\nhello\r\n0\r\n\r\n{smuggled}"),
        ),
    ];
    for (name, request) in cases {
        let answer = raw_exchange(gateway.inbound, request.as_bytes(), Duration::from_secs(5));
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{name}: expected 400, got {answer:?}"
        );
        assert!(
            answer.contains("\"error\":\"bad_request"),
            "{name}: {answer}"
        );
        assert!(answer.contains("Connection: close"), "{name}: {answer}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{name}: the request behind it was answered: {answer}"
        );
    }
    assert!(app.received().is_empty(), "{:?}", app.received());
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_bodies_with_extensions_and_trailers_reach_the_app_as_sent() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).start().await;
    let request = concat!(
        "POST /hooks/test?n=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "5;ext=1\r\nhello\r\n7 ; name=\"v\"\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
        // Pipelined behind it on the same connection: read from where the first ended.
        "POST /hooks/test?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    let answer = raw_exchange(gateway.inbound, request.as_bytes(), Duration::from_secs(2));
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    let received = app.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(&received[0].body[..], b"hello, world");
    assert_eq!(received[0].header("content-length"), Some("12"));
    assert_eq!(received[0].header("transfer-encoding"), None);
    assert_eq!(received[0].header("x-trailer"), None);
    assert_eq!(&received[1].body[..], b"abc");
}

/// An app on a raw socket answering each request with the bytes its `?case=` names, then
/// closing the connection if the case ends that way.
async fn scripted_app() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                loop {
                    // hookgate writes each request (head and a small body) in one write.
                    let mut buf = vec![0u8; 65536];
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let case = head
                        .split_once("case=")
                        .and_then(|(_, rest)| rest.split(' ').next())
                        .unwrap_or_default()
                        .to_string();
                    let (answer, close): (Vec<u8>, bool) = match case.as_str() {
                        "interim" => (
                            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                            false,
                        ),
                        "chunked" => (
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: 1\r\n\r\n".to_vec(),
                            false,
                        ),
                        "close" => (b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec(), true),
                        "both" => (
                            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
                            false,
                        ),
                        "two-lengths" => (
                            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                            true,
                        ),
                        "large" => {
                            let mut answer =
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                            for i in 0..50u8 {
                                answer.extend_from_slice(b"1000\r\n");
                                answer.extend_from_slice(&[b'a' + i % 26; 4096]);
                                answer.extend_from_slice(b"\r\n");
                            }
                            answer.extend_from_slice(b"0\r\n\r\n");
                            (answer, false)
                        }
                        _ => (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(), true),
                    };
                    if socket.write_all(&answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn every_framing_of_the_apps_answer_reaches_the_client_whole() {
    let app = scripted_app().await;
    let gateway = Gateway::builder(app).start().await;
    let client = reqwest::Client::new();
    let send = |case: &str| {
        client
            .post(gateway.url(&format!("/hooks/test?case={case}")))
            .body("{}")
            .send()
    };
    for (case, body) in [
        ("interim", "ok"),
        ("chunked", "abcde"),
        ("close", "until close"),
        ("both", "ok"),
    ] {
        let answer = send(case).await.unwrap();
        assert_eq!(answer.status(), 200, "{case}");
        assert_eq!(
            answer.headers()["content-length"],
            body.len().to_string().as_str(),
            "{case}: an answer read whole is sent with its length"
        );
        assert!(
            answer.headers().get("x-t").is_none(),
            "{case}: trailers stay"
        );
        assert_eq!(answer.text().await.unwrap(), body, "{case}");
    }
    // Longer than hookgate reads ahead: relayed in chunks as it arrives.
    let answer = send("large").await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["transfer-encoding"], "chunked");
    let body = answer.bytes().await.unwrap();
    assert_eq!(body.len(), 50 * 4096);
    assert!(
        body[..4096].iter().all(|&b| b == b'a') && body[49 * 4096..].iter().all(|&b| b == b'x')
    );
    // An answer whose end cannot be known is not relayed.
    let answer = send("two-lengths").await.unwrap();
    assert_eq!(answer.status(), 502);
    let json: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(json["error"], "upstream_error");
}
