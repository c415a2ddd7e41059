//! Finding 7 of the hardening review: per-request destinations in any special-purpose
//! block, or embedding one in IPv6, are refused at accept.
//!
//! A wrong answer here would make hookgate deliver to that address, so the test runs in
//! a network namespace of its own with nothing but loopback (`unshare`): even a guard
//! that let one through could not reach any network.

mod support;

use std::process::Command;

use support::{Gateway, TestApp};

#[tokio::test(flavor = "multi_thread")]
async fn special_purpose_destinations_are_refused_at_accept() {
    if !support::in_loopback_namespace("special_purpose_destinations_are_refused_at_accept") {
        return;
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert_eq!(links.lines().count(), 1, "only loopback, found:\n{links}");

    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints("    []\n")
        .start()
        .await;
    let client = reqwest::Client::new();
    for host in [
        "127.0.0.1",
        "169.254.169.254",
        "198.18.0.1",
        "192.0.0.170",
        "100.64.0.1",
        "[::1]",
        "[::127.0.0.1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:0:7f00:1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::1]",
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
        "[fd00:ec2::254]",
    ] {
        let answer = client
            .post(format!("http://{}/", gateway.outbound))
            .header("Hookgate-Destination", format!("http://{host}/hook"))
            .header("Hookgate-Secret", "tenant-secret")
            .header("Hookgate-Scheme", "github")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let json: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(
            (status, json["error"].as_str()),
            (400, Some("destination_not_allowed")),
            "{host}: {json}"
        );
    }
    assert!(gateway.stored_deliveries().await.is_empty());
}
