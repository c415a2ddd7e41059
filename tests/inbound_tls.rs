//! Edge mode: hookgate terminates TLS itself (rustls, HTTP/1.1 and h2 by ALPN) and
//! behaves as it does over plain HTTP.

mod support;

use std::process::Command;

use support::{make_certificates, Gateway, TestApp};

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn https_clients_get_the_same_behaviour_as_plain_http() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .inbound(&format!(
            "  tls: {{ cert: \"{}\", key: \"{}\" }}\n",
            certs.path().join("server.pem").display(),
            certs.path().join("server.key").display()
        ))
        .routes("    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [s] } }\n")
        .start()
        .await;
    let url = format!("https://127.0.0.1:{}/hooks/rejento", gateway.inbound.port());
    let ca = certs.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let body = r#"{"event":"candidate.created"}"#;
    let sign = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args([
            "sign", "--scheme", "rejento", "--secret", "s", "--id", "tls-1", "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(body.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let headers: Vec<String> = String::from_utf8(sign.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let (url2, ca2) = (url.clone(), ca.to_string());
    let results = tokio::task::spawn_blocking(move || {
        let mut signed_args: Vec<&str> = Vec::new();
        for h in &headers {
            signed_args.extend(["-H", h.as_str()]);
        }
        let with = |extra: &[&str]| {
            let mut args = vec![
                "--cacert",
                ca2.as_str(),
                "-X",
                "POST",
                "--data-binary",
                body,
                url2.as_str(),
            ];
            args.extend_from_slice(extra);
            curl(&args)
        };
        let h2 = with(&[&["--http2"][..], &signed_args].concat());
        let h1 = with(&[&["--http1.1"][..], &signed_args].concat());
        let forged = with(&["--http1.1", "-H", "X-Rejento-Signature: 00"]);
        (h2, h1, forged)
    })
    .await
    .unwrap();
    assert_eq!(results.0, "200 2", "h2 by ALPN");
    assert_eq!(results.1, "200 1.1");
    assert_eq!(results.2, "401 1.1");
    let received = app.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(received[0].header("hookgate-delivery-id"), Some("tls-1"));
    assert_eq!(received[0].body.as_ref(), body.as_bytes());
    // An unknown CA is refused by the client, as it should be.
    let untrusted = tokio::task::spawn_blocking(move || curl(&["-X", "POST", url.as_str()]))
        .await
        .unwrap();
    assert!(untrusted.starts_with("000"), "{untrusted}");
}

#[test]
fn a_bad_certificate_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "inbound:\n  listen: 127.0.0.1:8443\n  tls: {{ cert: {0}/cert.pem, key: {0}/missing.key }}\n  upstream: http://127.0.0.1:8080\n  routes:\n    - {{ name: a, path: /a, verify: none }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":3:8: inbound.tls: cannot load the certificate and key"),
        "{stderr}"
    );
}
