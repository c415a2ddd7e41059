//! Finding 1 of the hardening review: routing and the app must agree on the path. A
//! request whose path the app could normalise into another route's path is refused.

mod support;

use std::time::Duration;

use support::{raw_exchange, Gateway, TestApp};

const ROUTES: &str = "    - { name: public, path: /public/*, verify: none }\n    - { name: signed, path: /hooks/signed, verify: { scheme: rejento, secrets: [s3cret] } }\n    - { name: other, path: /hooks/other, verify: { scheme: github, secrets: [s3cret] } }\n";

#[tokio::test(flavor = "multi_thread")]
async fn dot_segments_and_encodings_cannot_reach_a_signed_route_unsigned() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).routes(ROUTES).start().await;
    let attacks = [
        "/public/../hooks/signed",
        "/public/%2e%2e/hooks/signed",
        "/public/%2E%2E/hooks/signed",
        "/public/..%2fhooks/signed",
        "/public/./../hooks/signed",
        "/public/..\\hooks/signed",
        "/public/%5c..%5chooks/signed",
        "/public/x;/../../hooks/signed",
        "/public/%252e%252e/hooks/signed",
        "/public//..//hooks/signed",
        "/hooks/other/../signed",
        "/hooks/sign%65d",
        "/hooks/signed;x=1",
        "/public/%00/x",
    ];
    for path in attacks {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-Delivery: 1\r\n\r\n{{}}"
        );
        let answer = raw_exchange(gateway.inbound, request.as_bytes(), Duration::from_secs(3));
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{path}: expected a 400, got {answer:?}"
        );
        assert!(answer.contains("\"ambiguous_path\""), "{path}: {answer}");
    }
    // A case or trailing-slash variant of a signed path gets the signed route, not the public one.
    for path in ["/HOOKS/SIGNED", "/hooks/signed/"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let answer = raw_exchange(gateway.inbound, request.as_bytes(), Duration::from_secs(3));
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer:?}");
    }
    // The public route itself still works, and the app saw nothing else.
    let request =
        "POST /public/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let answer = raw_exchange(gateway.inbound, request.as_bytes(), Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let received = app.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].uri, "/public/ok");
    let metrics = gateway.metrics_eventually("error=\"ambiguous_path\"").await;
    assert!(metrics.contains("route=\"_unmatched\""));
}
