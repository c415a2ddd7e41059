//! Signature verification on the inbound path: only verified requests reach the app.

mod support;

use std::process::Command;

use hookgate::clock::unix_now;
use hookgate::schemes::{Message, SchemeSpec, Verifier};
use support::{post, sign, stays, Gateway, TestApp};

/// The status and the answer, as JSON when it is.
async fn post_json(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let response = post(&reqwest::Client::new(), url, headers, &body).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_curl_command_from_hookgate_sign_is_accepted() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [\"${REJENTO_SECRET}\"] } }\n")
        .env("REJENTO_SECRET", "s")
        .start()
        .await;
    let body = gateway.dir.path().join("body.json");
    std::fs::write(
        &body,
        br#"{"event":"candidate.created","data":{"id":"cand_1"}}"#,
    )
    .unwrap();
    let sign = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args([
            "sign",
            "--scheme",
            "rejento",
            "--secret",
            "s",
            "--id",
            "dlv_42",
            "--curl",
            &gateway.url("/hooks/rejento"),
        ])
        .arg(&body)
        .output()
        .unwrap();
    assert!(
        sign.status.success(),
        "{}",
        String::from_utf8_lossy(&sign.stderr)
    );
    let curl = String::from_utf8(sign.stdout).unwrap();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .args(["-c", &format!("{} -w ' %{{http_code}}'", curl.trim())])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&run.stdout).ends_with(" 200"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let received = app.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].body.as_ref(),
        std::fs::read(&body).unwrap().as_slice()
    );
    assert_eq!(received[0].header("hookgate-verified"), Some("rejento"));
    assert_eq!(received[0].header("hookgate-delivery-id"), Some("dlv_42"));
    assert!(
        received[0].header("x-rejento-signature").is_some(),
        "signatures are passed on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unverified_requests_get_401_and_never_reach_the_app() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: github, path: /hooks/github, verify: { scheme: github, secrets: [gh-secret] } }\n")
        .start()
        .await;
    let url = gateway.url("/hooks/github");
    let body = br#"{"action":"opened"}"#.to_vec();
    let (status, json) = post_json(&url, &[], body.clone()).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("missing_signature"))
    );
    let forged = sign("github", "wrong-secret", "d", &body, None);
    let (status, json) = post_json(&url, &forged, body.clone()).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("invalid_signature"))
    );
    assert_eq!(
        json["message"],
        "signature does not match any configured secret"
    );
    let good = sign("github", "gh-secret", "d", &body, None);
    let (status, json) = post_json(&url, &good, br#"{"action":"closed"}"#.to_vec()).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("invalid_signature")),
        "tampered body"
    );
    let bad_prefix = vec![(
        "x-hub-signature-256".to_string(),
        good[0].1.replace("sha256=", "sha1="),
    )];
    let (status, json) = post_json(&url, &bad_prefix, body.clone()).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("malformed_signature"))
    );
    assert!(app.received().is_empty());

    let (status, _) = post_json(&url, &good, body).await;
    assert_eq!(status, 200);
    assert_eq!(app.received()[0].header("hookgate-delivery-id"), Some("d"));
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(
            "hookgate_inbound_errors_total{route=\"github\",error=\"invalid_signature\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookgate_inbound_verified_total{route=\"github\",secret=\"0\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_megabyte_is_verified_before_the_app_sees_it() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: sw, path: /hooks/sw, verify: { scheme: standard-webhooks, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw] } }\n")
        .start()
        .await;
    let body: Vec<u8> = (0..(1 << 20) - 64).map(|i| b"abcdefghij"[i % 10]).collect();
    let headers = sign(
        "standard-webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_big",
        &body,
        None,
    );
    let (status, _) = post_json(&gateway.url("/hooks/sw"), &headers, body.clone()).await;
    assert_eq!(status, 200);
    let mut tampered = body.clone();
    tampered[900_000] = b'!';
    let (status, _) = post_json(&gateway.url("/hooks/sw"), &headers, tampered).await;
    assert_eq!(status, 401);
    let received = app.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].body == body);
    assert_eq!(received[0].header("hookgate-delivery-id"), Some("msg_big"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_secrets_and_stale_timestamps() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: stripe, path: /hooks/stripe, verify: { scheme: stripe, secrets: [whsec_new, whsec_old], tolerance: 1m } }\n")
        .start()
        .await;
    let body = br#"{"id":"evt_1"}"#.to_vec();
    let old = sign("stripe", "whsec_old", "", &body, None);
    let (status, _) = post_json(&gateway.url("/hooks/stripe"), &old, body.clone()).await;
    assert_eq!(status, 200);
    let stale = Verifier::new(&SchemeSpec::Named("stripe".into()), &["whsec_new"], None)
        .unwrap()
        .sign(&Message {
            id: "",
            timestamp: unix_now() - 120,
            method: "POST",
            url: None,
            body: &body,
        })
        .unwrap();
    let (status, json) = post_json(&gateway.url("/hooks/stripe"), &stale, body).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("timestamp_out_of_tolerance"))
    );
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("hookgate_inbound_verified_total{route=\"stripe\",secret=\"1\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn static_credentials_are_stripped_unless_kept() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes(
            "    - { name: jobylon, path: /hooks/jobylon, verify: { scheme: jobylon, secrets: [xyz] } }\n    - { name: kept, path: /hooks/kept, verify: { scheme: bearer, secrets: [xyz], keep_credentials: true } }\n",
        )
        .start()
        .await;
    let auth = vec![("authorization".to_string(), "Bearer xyz".to_string())];
    assert_eq!(
        post_json(&gateway.url("/hooks/jobylon"), &auth, b"{}".to_vec())
            .await
            .0,
        200
    );
    assert_eq!(
        post_json(&gateway.url("/hooks/kept"), &auth, b"{}".to_vec())
            .await
            .0,
        200
    );
    let wrong = vec![("authorization".to_string(), "Bearer xy".to_string())];
    assert_eq!(
        post_json(&gateway.url("/hooks/jobylon"), &wrong, b"{}".to_vec())
            .await
            .0,
        401
    );
    let received = app.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("authorization"), None);
    assert_eq!(received[0].header("hookgate-verified"), Some("jobylon"));
    assert_eq!(received[1].header("authorization"), Some("Bearer xyz"));
}

#[tokio::test(flavor = "multi_thread")]
async fn generic_hmac_and_url_signing_schemes() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes(concat!(
            "    - name: custom\n      path: /hooks/custom\n      verify:\n        scheme: hmac\n        secrets: [custom-secret]\n",
            "        header: X-Signature\n        algorithm: sha512\n        encoding: base64url\n        prefix: \"v2=\"\n",
            "        timestamp_header: X-Timestamp\n        id_header: X-Id\n        signed_content: \"{id}:{timestamp}:{body}\"\n",
            "    - { name: twilio, path: /hooks/twilio, verify: { scheme: twilio, secrets: [auth-token] } }\n",
        ))
        .start()
        .await;
    let body = br#"{"n":1}"#.to_vec();
    let options = hookgate::schemes::HmacOptions {
        header: "x-signature".into(),
        algorithm: hookgate::schemes::crypto::Algorithm::Sha512,
        encoding: hookgate::schemes::crypto::Encoding::Base64Url,
        prefix: "v2=".into(),
        timestamp_header: Some("x-timestamp".into()),
        id_header: Some("x-id".into()),
        template: hookgate::schemes::Template::parse("{id}:{timestamp}:{body}").unwrap(),
        secret_encoding: hookgate::schemes::SecretEncoding::Utf8,
        body_timestamp_ms: None,
        timestamp_format: hookgate::schemes::TimestampFormat::UnixSeconds,
        signature_list: None,
    };
    let headers = Verifier::new(&SchemeSpec::Hmac(options), &["custom-secret"], None)
        .unwrap()
        .sign(&Message {
            id: "evt-7",
            timestamp: unix_now(),
            method: "POST",
            url: None,
            body: &body,
        })
        .unwrap();
    assert_eq!(
        post_json(&gateway.url("/hooks/custom"), &headers, body.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        app.received()[0].header("hookgate-delivery-id"),
        Some("evt-7")
    );

    // Twilio signs the URL it called; hookgate rebuilds it from Host and the path.
    let form = b"Body=hello&From=%2B15551234567".to_vec();
    let url = gateway.url("/hooks/twilio?tenant=a");
    let mut headers = sign("twilio", "auth-token", "", &form, Some(&url));
    headers.push((
        "content-type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    assert_eq!(post_json(&url, &headers, form.clone()).await.0, 200);
    let other = gateway.url("/hooks/twilio?tenant=b");
    assert_eq!(post_json(&other, &headers, form).await.0, 401);
}

/// Sends a raw HTTP/1.1 request, optionally waiting for `100 Continue` before the body.
fn raw_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    chunked: bool,
    expect: bool,
) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if expect {
        head.push_str("Expect: 100-continue\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut seen = Vec::new();
    if expect {
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).unwrap();
        seen.extend_from_slice(&buf[..n]);
        if !seen.starts_with(b"HTTP/1.1 100") {
            // Refused before the body (e.g. 413): that is the whole answer.
            let _ = stream.read_to_end(&mut seen);
            return String::from_utf8_lossy(&seen).into_owned();
        }
        seen.clear();
    }
    let sent = if chunked {
        body.chunks(10_000)
            .try_for_each(|c| {
                stream
                    .write_all(format!("{:x}\r\n", c.len()).as_bytes())
                    .and_then(|_| stream.write_all(c))
                    .and_then(|_| stream.write_all(b"\r\n"))
            })
            .and_then(|_| stream.write_all(b"0\r\n\r\n"))
    } else {
        stream.write_all(body)
    };
    // Over the limit, hookgate may answer and close before the whole body is sent.
    let _ = sent;
    let _ = stream.read_to_end(&mut seen);
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn body_sizes_around_the_limits_with_every_framing() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [s] } }\n")
        .start()
        .await;
    let mut expected_bodies = Vec::new();
    for size in [0usize, 64 * 1024 - 1, 64 * 1024 + 1, 1 << 20, (1 << 20) + 1] {
        for chunked in [false, true] {
            for expect in [false, true] {
                let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                let headers = sign(
                    "rejento",
                    "s",
                    &format!("d-{size}-{chunked}-{expect}"),
                    &body,
                    None,
                );
                let addr = gateway.inbound;
                let sent = body.clone();
                let answer = tokio::task::spawn_blocking(move || {
                    raw_post(addr, "/hooks/rejento", &headers, &sent, chunked, expect)
                })
                .await
                .unwrap();
                let case = format!("{size} bytes, chunked={chunked}, expect={expect}");
                if size > 1 << 20 {
                    assert!(answer.starts_with("HTTP/1.1 413"), "{case}: {answer:.200}");
                } else {
                    assert!(answer.starts_with("HTTP/1.1 200"), "{case}: {answer:.200}");
                    expected_bodies.push(body);
                }
            }
        }
    }
    let received = app.received();
    assert_eq!(received.len(), expected_bodies.len());
    for (got, want) in received.iter().zip(&expected_bodies) {
        assert!(
            got.body == *want,
            "a {}-byte body changed on the way",
            want.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_kib_body_with_a_wrong_signature_never_reaches_the_app() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .routes("    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [s] } }\n")
        .start()
        .await;
    let body = vec![b'x'; 200 * 1024];
    let headers = sign("rejento", "not-s", "d-200k", &body, None);
    let (status, json) = post_json(&gateway.url("/hooks/rejento"), &headers, body).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("invalid_signature"))
    );
    stays(
        "the app's record shows no request at all",
        std::time::Duration::from_millis(100),
        async || app.received().is_empty(),
    )
    .await;
}

/// Every scheme through the real server: valid is forwarded once; wrong secret, tampered,
/// stale and future-dated are refused and the app sees none of them.
#[tokio::test(flavor = "multi_thread")]
async fn every_scheme_end_to_end() {
    let app = TestApp::start().await;
    let schemes: Vec<&str> = hookgate::schemes::SCHEME_NAMES
        .iter()
        .copied()
        .filter(|s| *s != "hmac")
        .collect();
    let secret = |scheme: &str, good: bool| {
        use hookgate::schemes::presets::{find, SecretFormat};
        let key = if good {
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        } else {
            "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
        };
        match find(scheme).unwrap().secret_format() {
            SecretFormat::Whsec => format!("whsec_{key}"),
            SecretFormat::Base64 => key.to_string(),
            SecretFormat::Hex => (if good { "00112233" } else { "44556677" }).to_string(),
            SecretFormat::UserPassword => format!("user:{}", if good { "right" } else { "wrong" }),
            // Base64 of a 32-byte Ed25519 seed.
            // PKCS#8 P-256 keys, made with Python's cryptography.
            SecretFormat::EcdsaPublicKey => (if good { "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD2t1qyvEccehRANCAASCZJhJbaGTBQRq51VV7FgN8L6sxS+EieFUTCdG/vrTkYRNL39xJFgbCU6OFzLBCyhxuE7e7QZoMNCkvEnEsYLK" } else { "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAHtbrVleI446hRANCAAQIjfGyYTGeO9lxDAGadD79Y0j0F02LXNRTiKZ6pinCIkB6dtt4fDGUnV8L0UDMzZT1trxIspf1ZWU8pQqE8LFz" }).to_string(),
            SecretFormat::Ed25519PublicKey => format!(
                "whsk_{}",
                if good {
                    "cmlnaHQtZWQyNTUxOS1zZWVkLW9mLTMyLWJ5dGVzISE="
                } else {
                    "d3JvbmctZWQyNTUxOS1zZWVkLW9mLTMyLWJ5dGVzISE="
                }
            ),
            SecretFormat::Text => (if good { "right-secret" } else { "wrong-secret" }).to_string(),
        }
    };
    let routes: String = schemes
        .iter()
        .map(|s| format!("    - {{ name: {s}, path: /hooks/{s}, verify: {{ scheme: {s}, secrets: [\"{}\"] }} }}\n", secret(s, true)))
        .collect();
    let gateway = Gateway::builder(app.url()).routes(&routes).start().await;
    let client = reqwest::Client::new();
    let mut expected = 0;
    for scheme in schemes {
        let url = gateway.url(&format!("/hooks/{scheme}"));
        let now = unix_now();
        let body: Vec<u8> = match scheme {
            "linear" => {
                format!(r#"{{"action":"create","webhookTimestamp":{}}}"#, now * 1000).into_bytes()
            }
            "twilio" => b"Body=hi&From=%2B15551234567".to_vec(),
            _ => br#"{"event":"candidate.created","id":"evt_1"}"#.to_vec(),
        };
        let sign = |good: bool, timestamp: u64| {
            let mut headers = Verifier::new(
                &SchemeSpec::Named(scheme.into()),
                &[secret(scheme, good).as_str()],
                None,
            )
            .unwrap()
            .sign(&Message {
                id: "dlv-1",
                timestamp,
                method: "POST",
                url: Some(&url),
                body: &body,
            })
            .unwrap();
            if scheme == "twilio" {
                headers.push((
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ));
            }
            headers
        };
        let send = |headers: Vec<(String, String)>, body: Vec<u8>| {
            let mut request = client.post(&url).body(body);
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(
            send(sign(true, now), body.clone()).await,
            200,
            "{scheme}: valid"
        );
        expected += 1;
        assert_eq!(
            send(sign(false, now), body.clone()).await,
            401,
            "{scheme}: wrong secret"
        );
        if hookgate::schemes::presets::find(scheme)
            .unwrap()
            .signs_body()
        {
            let mut tampered = body.clone();
            tampered.push(b' ');
            assert_eq!(
                send(sign(true, now), tampered).await,
                401,
                "{scheme}: tampered"
            );
        }
        let timestamped = sign(true, now) != sign(true, now - 600);
        if timestamped && scheme != "linear" {
            assert_eq!(
                send(sign(true, now - 600), body.clone()).await,
                401,
                "{scheme}: stale"
            );
            assert_eq!(
                send(sign(true, now + 600), body.clone()).await,
                401,
                "{scheme}: future"
            );
        }
        assert_eq!(
            app.received().len(),
            expected,
            "{scheme}: only the valid request reached the app"
        );
        assert_eq!(
            app.received()[expected - 1].header("hookgate-verified"),
            Some(scheme)
        );
    }
}
