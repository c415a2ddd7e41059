//! Dedupe and rate limiting on the inbound path, with the real binary and a real app.

mod support;

use std::time::Duration;

use support::{post, sign, Gateway, TestApp};

const ROUTE: &str = "    - name: rejento\n      path: /hooks/rejento\n      verify: { scheme: rejento, secrets: [s3cret] }\n      dedupe: { id: \"header:X-Rejento-Delivery-Id\", ttl: 1h }\n";

fn signed(id: &str, body: &[u8]) -> Vec<(String, String)> {
    sign("rejento", "s3cret", id, body, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_copies_reach_the_app_once() {
    let app = TestApp::start().await;
    app.respond_with(200, Duration::from_millis(300));
    let gateway = Gateway::builder(app.url()).routes(ROUTE).start().await;
    let body = br#"{"event":"candidate.created"}"#;
    let headers = signed("dlv-concurrent", body);
    let client = reqwest::Client::new();
    let url = gateway.url("/hooks/rejento");
    let copies = (0..200).map(|_| {
        let (client, url, headers) = (client.clone(), url.clone(), headers.clone());
        tokio::spawn(async move {
            let response = post(&client, &url, &headers, body).await;
            let duplicate = response.headers().get("hookgate-duplicate").is_some();
            (response.status().as_u16(), duplicate)
        })
    });
    let answers: Vec<(u16, bool)> = futures_util::future::join_all(copies)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(app.received().len(), 1, "exactly one copy reaches the app");
    let forwarded = answers.iter().filter(|(s, dup)| *s == 200 && !dup).count();
    let duplicates = answers.iter().filter(|(s, dup)| *s == 200 && *dup).count();
    let in_flight = answers.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!(forwarded, 1, "{answers:?}");
    assert_eq!(forwarded + duplicates + in_flight, 200, "{answers:?}");
    assert!(
        in_flight > 0,
        "copies that arrive during the 300 ms delivery are in flight"
    );

    // After the first delivery completed, a copy is a duplicate with the app's status.
    let again = post(&client, &url, &headers, body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["hookgate-duplicate"], "true");
    for series in [
        "hookgate_inbound_requests_total{route=\"rejento\",outcome=\"forwarded\",status=\"200\"} 1",
        "hookgate_inbound_requests_total{route=\"rejento\",outcome=\"duplicate\",status=\"200\"}",
        "hookgate_inbound_requests_total{route=\"rejento\",outcome=\"delivery_in_flight\",status=\"409\"}",
        // The embedded store's operations are timed as Redis' are: each of the 201 requests
        // claims its id and its signed content in one operation, and the delivered one
        // records both in one.
        "hookgate_store_operation_duration_seconds_count{op=\"dedupe_claim\"} 201",
        "hookgate_store_operation_duration_seconds_count{op=\"dedupe_complete\"} 1",
    ] {
        gateway.metrics_eventually(series).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_is_released_for_the_retry() {
    let app = TestApp::start().await;
    app.respond_with(500, Duration::ZERO);
    let gateway = Gateway::builder(app.url()).routes(ROUTE).start().await;
    let client = reqwest::Client::new();
    let url = gateway.url("/hooks/rejento");
    let body = br#"{"n":1}"#;
    let headers = signed("dlv-retry", body);
    assert_eq!(post(&client, &url, &headers, body).await.status(), 500);
    app.respond_with(202, Duration::ZERO);
    assert_eq!(
        post(&client, &url, &headers, body).await.status(),
        202,
        "the retry goes through"
    );
    let duplicate = post(&client, &url, &headers, body).await;
    assert_eq!(
        duplicate.status(),
        202,
        "a duplicate gets the recorded status"
    );
    assert_eq!(app.received().len(), 2);
    gateway
        .metrics_eventually("hookgate_upstream_responses_total{route=\"rejento\",class=\"5xx\"} 1")
        .await;
    gateway
        .metrics_eventually("hookgate_upstream_responses_total{route=\"rejento\",class=\"2xx\"} 1")
        .await;

    // Without the id header the route cannot dedupe: 400, and the app is not called.
    let mut without_id = signed("x", body);
    without_id.retain(|(k, _)| k != "x-rejento-delivery-id");
    let response = post(&client, &url, &without_id, body).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["error"],
        "missing_delivery_id"
    );
    assert_eq!(app.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_ids_survive_a_restart() {
    let app = TestApp::start().await;
    let store = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let body = br#"{"n":2}"#;
    let headers = signed("dlv-restart", body);
    let mut first = Gateway::builder(app.url())
        .routes(ROUTE)
        .store_dir(store.path())
        .start()
        .await;
    assert_eq!(
        post(&client, &first.url("/hooks/rejento"), &headers, body)
            .await
            .status(),
        200
    );
    first.terminate(Duration::from_secs(5));

    let second = Gateway::builder(app.url())
        .routes(ROUTE)
        .store_dir(store.path())
        .start()
        .await;
    let response = post(&client, &second.url("/hooks/rejento"), &headers, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["hookgate-duplicate"], "true");
    assert_eq!(app.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_after_the_burst_gets_429_then_is_admitted_after_retry_after() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: limited, path: /hooks/limited, verify: none, rate_limit: { key: route, limit: 5/s } }\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let url = gateway.url("/hooks/limited");
    for i in 0..5 {
        let response = client.post(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            (4 - i).to_string().as_str()
        );
    }
    let refused = client.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry_after, 1,
        "200 ms to earn one request back, rounded up"
    );
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap()["error"],
        "rate_limited"
    );
    // A client that waits what Retry-After says is admitted: here the wait is the test.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(client.post(&url).send().await.unwrap().status(), 200);
    assert_eq!(app.received().len(), 6);
}
