//! Property tests: sign→verify round-trips for every scheme, and any single-byte change
//! of what a scheme signs is rejected. Plus the near misses, each with its own reason.

use hookgate::schemes::presets::{find, SecretFormat};
use hookgate::schemes::{Message, Request, SchemeSpec, Verifier, SCHEME_NAMES};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

const URL: &str = "https://receiver.example/hooks/in?x=1";

/// Secrets in the shape each scheme expects.
fn secret_for(scheme: &str, seed: &str) -> String {
    use base64::Engine;
    let base64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    match find(scheme).unwrap().secret_format() {
        SecretFormat::Whsec => format!("whsec_{}", base64(format!("{seed}-key-material-24b"))),
        SecretFormat::Base64 => base64(format!("{seed}-key-material-24b")),
        SecretFormat::Hex => hex_of(format!("{seed}-key")),
        SecretFormat::UserPassword => format!("user:{seed}"),
        // A whsk_ seed signs, and verifies through its public half.
        // A PKCS#8 P-256 key (made with Python's cryptography) signs, and verifies through its public half.
        SecretFormat::EcdsaPublicKey => "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD2t1qyvEccehRANCAASCZJhJbaGTBQRq51VV7FgN8L6sxS+EieFUTCdG/vrTkYRNL39xJFgbCU6OFzLBCyhxuE7e7QZoMNCkvEnEsYLK".to_string(),
        SecretFormat::Ed25519PublicKey => {
            format!("whsk_{}", base64(format!("{seed:0>32}")[..32].to_string()))
        }
        SecretFormat::Text => format!("s3cret-{seed}"),
    }
}

fn hex_of(text: String) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn signed_schemes() -> Vec<&'static str> {
    SCHEME_NAMES
        .iter()
        .copied()
        .filter(|s| *s != "hmac")
        .collect()
}

/// Whether the body is covered by the scheme's signature.
fn signs_body(scheme: &str) -> bool {
    find(scheme).unwrap().signs_body()
}

fn to_headers(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn body_for(scheme: &str, raw: &[u8], timestamp: u64) -> Vec<u8> {
    if scheme == "linear" {
        // Linear's timestamp lives in the signed body.
        let text: String = raw.iter().map(|b| char::from(b'a' + b % 26)).collect();
        format!(
            r#"{{"data":"{text}","webhookTimestamp":{}}}"#,
            timestamp * 1000
        )
        .into_bytes()
    } else if scheme == "twilio" {
        // Twilio signs decoded form parameters: send a form body.
        let text: String = raw.iter().map(|b| char::from(b'a' + b % 26)).collect();
        format!("Body={text}&From=%2B15551234567").into_bytes()
    } else {
        raw.to_vec()
    }
}

fn request<'a>(scheme: &str, headers: &'a HeaderMap, body: &'a [u8]) -> Request<'a> {
    let _ = scheme;
    Request {
        method: "POST",
        url: Some(URL),
        headers,
        body,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_verify_round_trips(
        raw in proptest::collection::vec(any::<u8>(), 0..512),
        id in "[a-zA-Z0-9_-]{1,40}",
        timestamp in 1_000_000_000u64..4_000_000_000,
        seeds in proptest::collection::vec("[a-z0-9]{1,12}", 1..4),
        signer in 0usize..3,
    ) {
        for scheme in signed_schemes() {
            let secrets: Vec<String> = seeds.iter().map(|s| secret_for(scheme, s)).collect();
            let signer = signer % secrets.len();
            let spec = SchemeSpec::Named(scheme.into());
            let body = body_for(scheme, &raw, timestamp);
            let sign_with = Verifier::new(&spec, &[secrets[signer].as_str()], None).unwrap();
            let headers = sign_with
                .sign(&Message { id: &id, timestamp, method: "POST", url: Some(URL), body: &body })
                .unwrap();
            let headers = to_headers(&headers);
            let all: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let verifier = Verifier::new(&spec, &all, None).unwrap();
            let verified = verifier.verify(&request(scheme, &headers, &body), timestamp + 1);
            let verified = verified.map_err(|e| TestCaseError::fail(format!("{scheme}: {e}")))?;
            // With duplicate seeds an earlier identical secret matches first.
            prop_assert_eq!(&secrets[verified.secret_index], &secrets[signer], "{}", scheme);

            if signs_body(scheme) {
                for position in [0, body.len() / 2, body.len().saturating_sub(1)] {
                    if position >= body.len() { continue }
                    let mut tampered = body.clone();
                    tampered[position] ^= 0x01;
                    prop_assert!(verifier.verify(&request(scheme, &headers, &tampered), timestamp).is_err(), "{} accepted a changed body byte", scheme);
                }
                let mut longer = body.clone();
                longer.push(b' ');
                prop_assert!(verifier.verify(&request(scheme, &headers, &longer), timestamp).is_err(), "{} accepted an extra byte", scheme);
            }
            // Change one byte of each header the scheme sent.
            for (name, value) in headers.iter() {
                let original = value.as_bytes();
                for position in [0, original.len() / 2, original.len() - 1] {
                    let mut changed = original.to_vec();
                    // '0'/'1' are valid in hex, base64, timestamps and ids, and are not a mere case change.
                    changed[position] = if changed[position] == b'0' { b'1' } else { b'0' };
                    let Ok(changed) = HeaderValue::from_bytes(&changed) else { continue };
                    if changed == value { continue }
                    let mut tampered = headers.clone();
                    tampered.insert(name.clone(), changed);
                    let tampered_request = request(scheme, &tampered, &body);
                    let result = verifier.verify(&tampered_request, timestamp);
                    // A token scheme sends the secret itself: changed into another configured
                    // secret (seeds "1" and "0"), it is that secret's valid token.
                    let others: Vec<&str> = all.iter().copied().filter(|s| *s != secrets[signer]).collect();
                    if !others.is_empty() {
                        let other = Verifier::new(&spec, &others, None).unwrap();
                        if other.verify(&tampered_request, timestamp).is_ok() { continue }
                    }
                    // An id header that the scheme does not sign (e.g. X-Rejento-Delivery-Id) may change.
                    let preset = find(scheme).unwrap();
                    let unsigned_id = !preset.signs_id() && preset.dedupe_id().is_some_and(|id| id.eq_ignore_ascii_case(name.as_str()));
                    if !unsigned_id {
                        prop_assert!(result.is_err(), "{} accepted a changed {} header", scheme, name);
                    }
                }
            }
        }
    }
}

fn single(scheme: &str, secret: &str) -> Verifier {
    Verifier::new(&SchemeSpec::Named(scheme.into()), &[secret], None).unwrap()
}

fn code(verifier: &Verifier, pairs: &[(&str, &str)], body: &[u8], now: u64) -> &'static str {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let headers = to_headers(&pairs);
    verifier
        .verify(
            &Request {
                method: "POST",
                url: Some(URL),
                headers: &headers,
                body,
            },
            now,
        )
        .map(|_| "ok")
        .unwrap_or_else(|e| e.code())
}

#[test]
fn near_misses_are_rejected_with_distinct_reasons() {
    let github = single("github", "secret");
    let body = b"{\"zen\":\"hi\"}";
    let good = github
        .sign(&Message {
            id: "d",
            timestamp: 0,
            method: "POST",
            url: None,
            body,
        })
        .unwrap();
    let sig = good[0].1.as_str();
    assert_eq!(
        code(&github, &[("x-hub-signature-256", sig)], body, 0),
        "ok"
    );
    assert_eq!(
        code(
            &single("github", "other"),
            &[("x-hub-signature-256", sig)],
            body,
            0
        ),
        "invalid_signature"
    );
    assert_eq!(
        code(
            &github,
            &[("x-hub-signature-256", sig)],
            b"{\"zen\":\"ho\"}",
            0
        ),
        "invalid_signature"
    );
    assert_eq!(
        code(
            &github,
            &[("x-hub-signature-256", &sig.replace("sha256=", "sha1="))],
            body,
            0
        ),
        "malformed_signature"
    );
    assert_eq!(
        code(
            &github,
            &[("x-hub-signature-256", &sig[..sig.len() - 1])],
            body,
            0
        ),
        "malformed_signature"
    );
    assert_eq!(
        code(
            &github,
            &[("x-hub-signature-256", &sig.replace('a', "g"))],
            body,
            0
        ),
        "malformed_signature"
    );
    assert_eq!(code(&github, &[], body, 0), "missing_signature");
    assert_eq!(
        code(
            &github,
            &[("x-hub-signature-256", sig), ("x-hub-signature-256", sig)],
            body,
            0
        ),
        "duplicate_header"
    );

    let shopify = single("shopify", "secret");
    assert_eq!(
        code(
            &shopify,
            &[("x-shopify-hmac-sha256", "not*base64")],
            body,
            0
        ),
        "malformed_signature"
    );

    let slack = single("slack", "secret");
    let signed = slack
        .sign(&Message {
            id: "",
            timestamp: 1_700_000_000,
            method: "POST",
            url: None,
            body,
        })
        .unwrap();
    let pairs = [
        ("x-slack-signature", signed[0].1.as_str()),
        ("x-slack-request-timestamp", "1700000000"),
    ];
    assert_eq!(code(&slack, &pairs, body, 1_700_000_000), "ok");
    assert_eq!(
        code(&slack, &pairs, body, 1_700_000_301),
        "timestamp_out_of_tolerance"
    );
    assert_eq!(
        code(&slack, &pairs, body, 1_699_999_699),
        "timestamp_out_of_tolerance"
    );
    assert_eq!(
        code(&slack, &pairs[..1], body, 1_700_000_000),
        "missing_header"
    );
    assert_eq!(
        code(
            &slack,
            &[pairs[0], ("x-slack-request-timestamp", "17e8")],
            body,
            1_700_000_000
        ),
        "malformed_timestamp"
    );

    let stripe = single("stripe", "whsec_x");
    assert_eq!(
        code(&stripe, &[("stripe-signature", "t=1,v1")], body, 1),
        "malformed_signature"
    );
    assert_eq!(
        code(&stripe, &[("stripe-signature", "v1=00")], body, 1),
        "malformed_signature"
    );
    assert_eq!(
        code(&stripe, &[("stripe-signature", "t=1,v0=00")], body, 1),
        "malformed_signature"
    );

    let sw = single(
        "standard-webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let base = [("webhook-id", "m"), ("webhook-timestamp", "1")];
    assert_eq!(
        code(
            &sw,
            &[base[0], base[1], ("webhook-signature", "v1a,abc")],
            body,
            1
        ),
        "malformed_signature"
    );
    assert_eq!(
        code(
            &sw,
            &[base[0], base[1], ("webhook-signature", "garbage")],
            body,
            1
        ),
        "malformed_signature"
    );
    assert_eq!(
        code(&sw, &[base[1], ("webhook-signature", "v1,AAAA")], body, 1),
        "missing_header"
    );

    let bearer = single("jobylon", "xyz");
    assert_eq!(
        code(&bearer, &[("authorization", "Bearer xyz")], body, 0),
        "ok"
    );
    assert_eq!(
        code(&bearer, &[("authorization", "bearer xyz")], body, 0),
        "ok"
    );
    assert_eq!(
        code(&bearer, &[("authorization", "Bearer xy")], body, 0),
        "invalid_signature"
    );
    assert_eq!(
        code(&bearer, &[("authorization", "Basic xyz")], body, 0),
        "malformed_signature"
    );

    let basic = single("basic", "user:pass");
    assert_eq!(
        code(&basic, &[("authorization", "Basic dXNlcjpwYXNz")], body, 0),
        "ok"
    );
    assert_eq!(
        code(&basic, &[("authorization", "Basic dXNlcjpwYXNx")], body, 0),
        "invalid_signature"
    );

    let gitlab = single("gitlab", "tok");
    assert_eq!(code(&gitlab, &[("x-gitlab-token", "tok")], body, 0), "ok");
    assert_eq!(
        code(&gitlab, &[("x-gitlab-token", "tok2")], body, 0),
        "invalid_signature"
    );
}

#[test]
fn rotation_reports_which_secret_matched() {
    let old = single("rejento", "old-secret");
    let signed = old
        .sign(&Message {
            id: "d-9",
            timestamp: 0,
            method: "POST",
            url: None,
            body: b"{}",
        })
        .unwrap();
    let rotated = Verifier::new(
        &SchemeSpec::Named("rejento".into()),
        &["new-secret", "old-secret"],
        None,
    )
    .unwrap();
    let headers = to_headers(&signed);
    let verified = rotated
        .verify(
            &Request {
                method: "POST",
                url: None,
                headers: &headers,
                body: b"{}",
            },
            0,
        )
        .unwrap();
    assert_eq!(verified.secret_index, 1);
    assert_eq!(verified.id.as_deref(), Some("d-9"));

    // Formats with room for several signatures carry one per secret.
    let both = Verifier::new(
        &SchemeSpec::Named("stripe".into()),
        &["whsec_a", "whsec_b"],
        None,
    )
    .unwrap();
    let header = &both
        .sign(&Message {
            id: "",
            timestamp: 5,
            method: "POST",
            url: None,
            body: b"{}",
        })
        .unwrap()[0]
        .1;
    assert_eq!(header.matches("v1=").count(), 2);
    let only_b = single("stripe", "whsec_b");
    assert_eq!(
        code(&only_b, &[("stripe-signature", header)], b"{}", 5),
        "ok"
    );
}
