//! Egress that enterprises require: receivers with private CAs, mutual TLS with a client
//! certificate (re-read when its files change), and a lowest TLS version, against a real
//! TLS receiver on another TLS stack (Python's `ssl`).

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use support::{
    eventually, make_certificates, make_client_certificate, Gateway, TestApp, TlsReceiver,
};

const WITHIN: Duration = Duration::from_secs(10);

/// A gateway with one endpoint, `receiver`, to `url` with `tls` (YAML), retrying fast.
async fn gateway(url: &str, tls: &str) -> Gateway {
    let app = TestApp::start().await;
    Gateway::builder(app.url())
        .endpoints(&format!(
            "    - {{ name: receiver, url: \"{url}/hooks\", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 20, timeout: 2s }}{tls} }}\n"
        ))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.01")
        .start()
        .await
}

/// Posts a message to endpoint `name`; its delivery id.
async fn send_to(gateway: &Gateway, name: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("http://{}/{name}", gateway.outbound))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let json: Value = response.json().await.unwrap();
    json["delivery_id"].as_str().unwrap().to_string()
}

/// Waits for the message's first failed attempt; its error.
async fn first_error(gateway: &Gateway, id: &str) -> String {
    let path = format!("/admin/deliveries/{id}");
    let mut error = String::new();
    eventually("a failed attempt", WITHIN, async || {
        let (_, record) = gateway.admin(Method::GET, &path).await;
        match record["attempts"][0]["error"].as_str() {
            Some(e) => {
                error = e.to_string();
                true
            }
            None => false,
        }
    })
    .await;
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_requires_a_client_certificate_gets_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let receiver = TlsReceiver::start(dir.path(), true, false);
    let d = dir.path().display();
    let tls = format!(
        ", tls: {{ ca: \"{d}/ca.pem\", cert: \"{d}/client.pem\", key: \"{d}/client.key\" }}"
    );
    let gateway = gateway(&receiver.url(), &tls).await;
    send_to(&gateway, "receiver").await;
    eventually("delivered over mTLS", WITHIN, async || {
        !receiver.received().is_empty()
    })
    .await;
    assert_eq!(receiver.received()[0]["client"], "hookgate client");
    assert_eq!(receiver.received()[0]["version"], "TLSv1.3");
    // A renewed certificate is used from the next connection, without a restart.
    make_client_certificate(dir.path(), "renewed", "hookgate client, renewed");
    std::fs::rename(
        dir.path().join("renewed.key"),
        dir.path().join("client.key"),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("renewed.pem"),
        dir.path().join("client.pem"),
    )
    .unwrap();
    send_to(&gateway, "receiver").await;
    eventually(
        "delivered with the renewed certificate",
        WITHIN,
        async || receiver.received().len() == 2,
    )
    .await;
    assert_eq!(receiver.received()[1]["client"], "hookgate client, renewed");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_certificate_or_its_ca_a_delivery_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let receiver = TlsReceiver::start(dir.path(), true, false);
    let d = dir.path().display();
    // The CA, but no client certificate: the receiver ends the handshake.
    let no_cert = gateway(&receiver.url(), &format!(", tls: {{ ca: \"{d}/ca.pem\" }}")).await;
    let id = send_to(&no_cert, "receiver").await;
    let error = first_error(&no_cert, &id).await;
    // TLS 1.3 finishes the client's side of the handshake before the receiver checks the
    // certificate: the refusal arrives as its alert, or as the connection it closed.
    assert!(
        error.contains("CertificateRequired")
            || error.contains("Broken pipe")
            || error.contains("reset"),
        "{error}"
    );
    // No CA: the receiver's certificate is from an unknown CA and is refused.
    let no_ca = gateway(&receiver.url(), "").await;
    let id = send_to(&no_ca, "receiver").await;
    let error = first_error(&no_ca, &id).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(receiver.received().is_empty(), "nothing was delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_below_the_minimum_tls_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let receiver = TlsReceiver::start(dir.path(), false, true);
    let d = dir.path().display();
    let strict = gateway(
        &receiver.url(),
        &format!(", tls: {{ ca: \"{d}/ca.pem\", min_version: \"1.3\" }}"),
    )
    .await;
    let id = send_to(&strict, "receiver").await;
    let error = first_error(&strict, &id).await;
    assert!(error.contains("TLS 1.3"), "{error}");
    assert!(receiver.received().is_empty());
    // The default minimum, 1.2, takes it.
    let lenient = gateway(&receiver.url(), &format!(", tls: {{ ca: \"{d}/ca.pem\" }}")).await;
    send_to(&lenient, "receiver").await;
    eventually("delivered over TLS 1.2", WITHIN, async || {
        !receiver.received().is_empty()
    })
    .await;
    assert_eq!(receiver.received()[0]["version"], "TLSv1.2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_file_that_is_missing_or_not_pem_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not.pem"), "hello").unwrap();
    let config = dir.path().join("hookgate.yaml");
    std::fs::write(
        &config,
        format!(
            "outbound:\n  endpoints:\n    - {{ name: a, url: \"https://a.example/\", sign: {{ scheme: rejento, secret: s }}, tls: {{ ca: \"{d}/not.pem\", cert: \"{d}/missing.pem\", min_version: \"1.1\" }} }}\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for expected in [
        "tls.ca",
        "no PEM block",
        "tls.cert",
        "cannot read",
        "tls.min_version",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn per_request_destinations_and_config_subscriptions_take_their_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let receiver = TlsReceiver::start(dir.path(), true, false);
    let d = dir.path().display();
    let tls =
        format!("{{ ca: \"{d}/ca.pem\", cert: \"{d}/client.pem\", key: \"{d}/client.key\" }}");
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints("    []\n")
        .outbound(&format!(
            "  allow_private_destinations: [127.0.0.0/8]\n  destinations: {{ tls: {tls} }}\n  subscriptions:\n    - {{ id: mtls, url: \"{}/sub\", event_types: [\"*\"], sign: {{ scheme: rejento, secret: s }}, tls: {tls} }}\n",
            receiver.url()
        ))
        .start()
        .await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/", gateway.outbound))
        .header(
            "Hookgate-Destination",
            format!("{}/destination", receiver.url()),
        )
        .header("Hookgate-Secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (status, answer) = gateway
        .publish(&[("Hookgate-Event-Type", "a.b")], "{}")
        .await;
    assert_eq!(status, 202, "{answer}");
    eventually("both delivered over mTLS", WITHIN, async || {
        receiver.received().len() == 2
    })
    .await;
    let mut paths: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["path"].as_str().unwrap(),
                r["client"].as_str().unwrap()
            )
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/destination hookgate client", "/sub hookgate client"]
    );
}

/// tinyproxy (from the distribution) on a free port, leaving from 127.0.0.2 so receivers
/// can tell proxied connections apart, asking for `user`/`password`. Killed when dropped.
struct Tinyproxy {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Tinyproxy {
    fn start(dir: &std::path::Path) -> Self {
        let port = support::free_port();
        let log = dir.join("tinyproxy.log");
        let config = dir.join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nBind 127.0.0.2\nTimeout 30\nMaxClients 64\nAllow 127.0.0.1\nLogLevel Connect\nLogFile \"{}\"\nBasicAuth hook s3cret-proxy\n",
                log.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tinyproxy is installed (apt-get install tinyproxy)");
        support::wait_until_listening(port);
        Tinyproxy { child, port, log }
    }

    /// The CONNECT requests it logged.
    fn connects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Request (") && l.contains("CONNECT "))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_leave_through_the_proxy_unless_no_proxy_names_their_host() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(dir.path());
    let (proxied, bypassed) = (TestApp::start().await, TestApp::start_on("127.0.0.3").await);
    let endpoint = |name: &str, app: &TestApp| {
        format!(
            "    - {{ name: {name}, url: \"{}/hooks\", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 20, timeout: 2s }} }}\n",
            app.url()
        )
    };
    let gateway = Gateway::builder(proxied.url())
        .endpoints(&(endpoint("proxied", &proxied) + &endpoint("bypassed", &bypassed)))
        .outbound(&format!(
            "  proxy: \"http://hook:${{PROXY_PASSWORD}}@127.0.0.1:{}\"\n  no_proxy: [\"127.0.0.3\"]\n",
            proxy.port
        ))
        .env("PROXY_PASSWORD", "s3cret-proxy")
        .start()
        .await;
    for name in ["proxied", "bypassed"] {
        send_to(&gateway, name).await;
    }
    proxied.wait_for(1).await;
    bypassed.wait_for(1).await;
    assert_eq!(
        proxied.received()[0].peer.ip().to_string(),
        "127.0.0.2",
        "the receiver sees the proxy's address"
    );
    assert_ne!(bypassed.received()[0].peer.ip().to_string(), "127.0.0.2");
    let connects = proxy.connects();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert!(connects[0].contains(&format!("127.0.0.1:{}", proxied.addr.port())));
    assert!(!gateway.log().contains("s3cret-proxy"));
}

#[tokio::test(flavor = "multi_thread")]
async fn https_proxy_from_the_environment_is_used_and_wrong_credentials_fail_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(dir.path());
    let receiver = TestApp::start().await;
    let gateway = Gateway::builder(receiver.url())
        .endpoints(&format!(
            "    - {{ name: receiver, url: \"{}/hooks\", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 20, timeout: 2s }} }}\n",
            receiver.url()
        ))
        .env("HTTPS_PROXY", &format!("http://hook:wrong@127.0.0.1:{}", proxy.port))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.01")
        .start()
        .await;
    let id = send_to(&gateway, "receiver").await;
    let error = first_error(&gateway, &id).await;
    assert!(!error.is_empty());
    assert!(
        receiver.received().is_empty(),
        "refused by the proxy: {error}"
    );
    assert!(!error.contains("wrong") && !gateway.log().contains("hook:wrong"));
}
