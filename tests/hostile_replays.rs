//! Finding 5 of the hardening review: one captured request, replayed under fresh delivery
//! ids, reaches the app once; and a flood of ids on one route leaves the others working.

mod support;

use hookgate::clock::unix_now;
use hookgate::schemes::{Message, SchemeSpec, Verifier};
use support::{Gateway, TestApp};

const SECRET: &str = "gh-secret";

#[tokio::test(flavor = "multi_thread")]
async fn a_body_only_signature_replayed_under_new_ids_reaches_the_app_once() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes(&format!(
            "    - {{ name: github, path: /hooks/github, verify: {{ scheme: github, secrets: [{SECRET}] }}, dedupe: {{ id: scheme }} }}\n"
        ))
        .start()
        .await;
    let body = br#"{"action":"opened","number":1}"#;
    let signed = Verifier::new(&SchemeSpec::Named("github".into()), &[SECRET], None)
        .unwrap()
        .sign(&Message {
            id: "first",
            timestamp: unix_now(),
            method: "POST",
            url: None,
            body,
        })
        .unwrap();
    let signature = signed
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-hub-signature-256"))
        .unwrap()
        .1
        .clone();
    let client = reqwest::Client::new();
    for i in 0..50 {
        let answer = client
            .post(gateway.url("/hooks/github"))
            .header("X-Hub-Signature-256", &signature)
            .header("X-GitHub-Delivery", format!("replay-{i}"))
            .header("X-GitHub-Event", "pull_request")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "attempt {i}");
        if i > 0 {
            assert_eq!(
                answer.headers()["hookgate-duplicate"],
                "true",
                "attempt {i}"
            );
        }
    }
    assert_eq!(app.received().len(), 1);
    // 49 duplicates in well under a few seconds: logged once a second, not once each.
    let lines = gateway.log().matches("duplicate answered").count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines for 49 duplicates"
    );
    // Another body is another delivery.
    let other = br#"{"action":"closed","number":1}"#;
    let signed = Verifier::new(&SchemeSpec::Named("github".into()), &[SECRET], None)
        .unwrap()
        .sign(&Message {
            id: "second",
            timestamp: unix_now(),
            method: "POST",
            url: None,
            body: other,
        })
        .unwrap();
    let mut request = client
        .post(gateway.url("/hooks/github"))
        .body(other.to_vec());
    for (name, value) in &signed {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert_eq!(app.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_flooded_with_ids_fills_only_its_own_share() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .max_ids(20)
        .routes("    - { name: flood, path: /hooks/flood, verify: none, dedupe: { id: \"header:X-Delivery\" } }\n    - { name: quiet, path: /hooks/quiet, verify: none, dedupe: { id: \"header:X-Delivery\" } }\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    let send = |path: &'static str, id: String| {
        client
            .post(gateway.url(path))
            .header("X-Delivery", id)
            .body("{}")
            .send()
    };
    let mut refused = 0;
    for i in 0..15 {
        let status = send("/hooks/flood", format!("f-{i}"))
            .await
            .unwrap()
            .status();
        if status == 503 {
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "the flooded route holds its share of 10 ids");
    // Every refusal is counted, but a store that refuses every request is logged once a
    // second, not once a request.
    for i in 15..200 {
        let status = send("/hooks/flood", format!("f-{i}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 503);
    }
    let lines = gateway
        .log()
        .matches("dedupe store refused a claim")
        .count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines for 190 refusals"
    );
    gateway
        .metrics_eventually(
            "hookgate_inbound_errors_total{route=\"flood\",error=\"dedupe_unavailable\"} 190",
        )
        .await;
    for i in 0..10 {
        let status = send("/hooks/quiet", format!("q-{i}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "the quiet route keeps its share");
    }
}
