//! Every published test vector (tests/data/vectors.json, copied from the providers'
//! docs and official SDK tests) verifies, and `sign` reproduces it byte for byte where
//! the vector fixes the id and timestamp.

use std::time::Duration;

use hookgate::schemes::{Message, Request, SchemeSpec, Verified, Verifier, VerifyError};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/vectors.json")).unwrap()
}

fn verifier(scheme: &str, secret: &str) -> Verifier {
    Verifier::new(&SchemeSpec::Named(scheme.into()), &[secret], None).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn verify(
    v: &Verifier,
    pairs: &[(&str, &str)],
    body: &str,
    url: Option<&str>,
    now: u64,
) -> Result<Verified, VerifyError> {
    let headers = headers(pairs);
    v.verify(
        &Request {
            method: "POST",
            url,
            headers: &headers,
            body: body.as_bytes(),
        },
        now,
    )
}

fn sign(
    v: &Verifier,
    id: &str,
    timestamp: u64,
    body: &str,
    url: Option<&str>,
) -> Vec<(String, String)> {
    v.sign(&Message {
        id,
        timestamp,
        method: "POST",
        url,
        body: body.as_bytes(),
    })
    .unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector has no {key}"))
}

#[test]
fn standard_webhooks_and_svix() {
    let all = vectors();
    let v = &all["standard_webhooks"];
    let (id, ts, body, sig) = (
        s(v, "msg_id"),
        v["timestamp"].as_u64().unwrap(),
        s(v, "payload"),
        s(v, "webhook-signature"),
    );
    let sw = verifier("standard-webhooks", s(v, "secret"));
    let ok = verify(
        &sw,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", sig),
        ],
        body,
        None,
        ts,
    )
    .unwrap();
    assert_eq!(
        ok,
        Verified {
            secret_index: 0,
            id: Some(id.into()),
            timestamp: Some(ts),
            signed_id: true,
        }
    );
    assert_eq!(
        sign(&sw, id, ts, body, None),
        vec![
            ("webhook-id".to_string(), id.to_string()),
            ("webhook-timestamp".to_string(), ts.to_string()),
            ("webhook-signature".to_string(), sig.to_string())
        ]
    );
    // Decoys before the real signature, as in the libraries' multi-signature test.
    let decoys = v["decoy_entries_from_multi_sig_test"].as_array().unwrap();
    let multi = format!(
        "{} {} {sig}",
        decoys[0].as_str().unwrap(),
        decoys[1].as_str().unwrap()
    );
    assert!(verify(
        &sw,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &multi)
        ],
        body,
        None,
        ts
    )
    .is_ok());
    let negative = s(v, "negative_signature_from_tests");
    let err = verify(
        &sw,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", negative),
        ],
        body,
        None,
        ts,
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_signature");

    let svix = verifier("svix", s(v, "secret"));
    assert!(verify(
        &svix,
        &[
            ("svix-id", id),
            ("svix-timestamp", &ts.to_string()),
            ("svix-signature", sig)
        ],
        body,
        None,
        ts
    )
    .is_ok());
    // Unbranded headers are accepted by Svix's libraries too.
    assert!(verify(
        &svix,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", sig)
        ],
        body,
        None,
        ts
    )
    .is_ok());
    assert_eq!(
        sign(&svix, id, ts, body, None)[2],
        ("svix-signature".to_string(), sig.to_string())
    );
}

#[test]
fn secrets_with_any_padding_decode() {
    // The Python library's tests cover secrets that need 0, 1 or 2 padding characters.
    for secret in [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ] {
        Verifier::new(
            &SchemeSpec::Named("standard-webhooks".into()),
            &[secret],
            None,
        )
        .unwrap();
    }
    let err = Verifier::new(
        &SchemeSpec::Named("standard-webhooks".into()),
        &["whsec_***"],
        None,
    )
    .err()
    .unwrap();
    assert!(err.starts_with("secret #0: expected whsec_"), "{err}");
}

#[test]
fn stripe() {
    let all = vectors();
    let v = &all["stripe_cross_library"];
    let ts = v["timestamp"].as_u64().unwrap();
    let stripe = verifier("stripe", s(v, "secret"));
    let header = s(v, "Stripe-Signature");
    let ok = verify(
        &stripe,
        &[("stripe-signature", header)],
        s(v, "payload"),
        None,
        ts + 299,
    )
    .unwrap();
    assert_eq!(ok.timestamp, Some(ts));
    let err = verify(
        &stripe,
        &[("stripe-signature", header)],
        s(v, "payload"),
        None,
        ts + 301,
    )
    .unwrap_err();
    assert_eq!(err.code(), "timestamp_out_of_tolerance");
    assert_eq!(
        sign(&stripe, "", ts, s(v, "payload"), None),
        vec![("stripe-signature".to_string(), header.to_string())]
    );
    // A bogus v1 first and a v0 test-mode signature are ignored, as in both SDKs.
    let sig = header.split_once(",v1=").unwrap().1;
    let rotated = format!(
        "t={ts},v1={},v1={sig},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
        "0".repeat(64)
    );
    assert!(verify(
        &stripe,
        &[("stripe-signature", &rotated)],
        s(v, "payload"),
        None,
        ts
    )
    .is_ok());
}

#[test]
fn github() {
    for v in vectors()["github"].as_array().unwrap() {
        let github = verifier("github", s(v, "secret"));
        let header = s(v, "X-Hub-Signature-256");
        let ok = verify(
            &github,
            &[
                ("x-hub-signature-256", header),
                ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ],
            s(v, "payload"),
            None,
            0,
        )
        .unwrap();
        assert_eq!(
            ok.id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        let signed = sign(
            &github,
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            0,
            s(v, "payload"),
            None,
        );
        assert_eq!(
            signed[0],
            ("x-hub-signature-256".to_string(), header.to_string())
        );
    }
}

#[test]
fn slack() {
    let all = vectors();
    let v = &all["slack"];
    let slack = verifier("slack", s(v, "signing_secret"));
    let ts = s(v, "X-Slack-Request-Timestamp");
    let now: u64 = ts.parse().unwrap();
    let pairs = [
        ("x-slack-signature", s(v, "X-Slack-Signature")),
        ("x-slack-request-timestamp", ts),
    ];
    assert!(verify(&slack, &pairs, s(v, "body"), None, now).is_ok());
    let signed = sign(&slack, "", now, s(v, "body"), None);
    assert_eq!(signed[0].1, s(v, "X-Slack-Signature"));
    assert_eq!(
        signed[1],
        ("x-slack-request-timestamp".to_string(), ts.to_string())
    );
    // slack_sdk rejects both directions.
    assert_eq!(
        verify(&slack, &pairs, s(v, "body"), None, now + 301)
            .unwrap_err()
            .code(),
        "timestamp_out_of_tolerance"
    );
    assert_eq!(
        verify(&slack, &pairs, s(v, "body"), None, now - 301)
            .unwrap_err()
            .code(),
        "timestamp_out_of_tolerance"
    );
}

#[test]
fn twilio() {
    let all = vectors();
    let cases = all["twilio"].as_array().unwrap();
    // Form parameters, given as a map: send them as a form body.
    let v = &cases[0];
    let body: String = form_body(v["params"].as_object().unwrap());
    let twilio = verifier("twilio", s(v, "auth_token"));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let with_sig = |sig: &str| {
        vec![form[0], ("x-twilio-signature", sig)]
            .into_iter()
            .map(|(a, b)| (a, b.to_string()))
            .collect::<Vec<_>>()
    };
    let pairs: Vec<(&str, String)> = with_sig(s(v, "X-Twilio-Signature"));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (*a, b.as_str())).collect();
    assert!(verify(&twilio, &pairs, &body, Some(s(v, "url")), 0).is_ok());
    assert_eq!(
        sign(&twilio, "", 0, &body, Some(s(v, "url")))[0].1,
        s(v, "X-Twilio-Signature")
    );
    // The same request signed with :443 in the URL also verifies, as in Twilio's validators.
    let port_sig = s(v, "same_with_port_443_variant");
    assert!(verify(
        &twilio,
        &[form[0], ("x-twilio-signature", port_sig)],
        &body,
        Some(s(v, "url")),
        0
    )
    .is_ok());
    // The docs' worked example, with the body as it is on the wire.
    let v = &cases[1];
    let twilio = verifier("twilio", s(v, "auth_token"));
    assert!(verify(
        &twilio,
        &[form[0], ("x-twilio-signature", s(v, "X-Twilio-Signature"))],
        s(v, "wire_body"),
        Some(s(v, "url")),
        0
    )
    .is_ok());
    // JSON body: signed through bodySHA256 in the URL.
    let v = &cases[2];
    let twilio = verifier("twilio", s(v, "auth_token"));
    let json = [
        ("content-type", "application/json"),
        ("x-twilio-signature", s(v, "X-Twilio-Signature")),
    ];
    assert!(verify(&twilio, &json, s(v, "body"), Some(s(v, "url")), 0).is_ok());
    assert_eq!(
        sign(&twilio, "", 0, s(v, "body"), Some(s(v, "url")))[0].1,
        s(v, "X-Twilio-Signature")
    );
    let tampered = s(v, "body").replace("true", "false");
    assert_eq!(
        verify(&twilio, &json, &tampered, Some(s(v, "url")), 0)
            .unwrap_err()
            .code(),
        "invalid_signature"
    );
}

fn form_body(params: &serde_json::Map<String, Value>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        out.append_pair(k, v.as_str().unwrap());
    }
    out.finish()
}

#[test]
fn square() {
    for v in vectors()["square"].as_array().unwrap() {
        let square = verifier("square", s(v, "signature_key"));
        let sig = s(v, "x-square-hmacsha256-signature");
        let url = s(v, "notification_url");
        assert!(verify(
            &square,
            &[("x-square-hmacsha256-signature", sig)],
            s(v, "body"),
            Some(url),
            0
        )
        .is_ok());
        assert_eq!(sign(&square, "", 0, s(v, "body"), Some(url))[0].1, sig);
        // Negative cases from the same SDK test: URL with one character removed.
        let short = &url[..url.len() - 1];
        assert!(verify(
            &square,
            &[("x-square-hmacsha256-signature", sig)],
            s(v, "body"),
            Some(short),
            0
        )
        .is_err());
        assert_eq!(
            verify(
                &square,
                &[("x-square-hmacsha256-signature", sig)],
                s(v, "body"),
                None,
                0
            )
            .unwrap_err()
            .code(),
            "missing_url"
        );
    }
}

#[test]
fn paddle() {
    let all = vectors();
    let v = &all["paddle"];
    let paddle = verifier("paddle", s(v, "secret"));
    let header = s(v, "Paddle-Signature");
    assert!(verify(
        &paddle,
        &[("paddle-signature", header)],
        s(v, "body"),
        None,
        1_698_796_803
    )
    .is_ok());
    assert_eq!(
        sign(&paddle, "", 1_698_796_800, s(v, "body"), None)[0].1,
        header
    );
    // Any h1 may match (paddle-python), whatever its position.
    let h1 = header.split_once(";h1=").unwrap().1;
    let two = format!("ts=1698796800;h1={h1};h1={}", "ab".repeat(32));
    assert!(verify(
        &paddle,
        &[("paddle-signature", &two)],
        s(v, "body"),
        None,
        1_698_796_800
    )
    .is_ok());
}

#[test]
fn derived_vectors_for_seed_vendors_and_others() {
    let all = vectors();
    let v = &all["derived_stdlib_python_and_node_agree"];
    let body = s(v, "body");
    let hex = s(v, "rejento_hiresscope_tenzo_hex(secret='whsec_test_ats')");
    for (scheme, header) in [
        ("rejento", "x-rejento-signature"),
        ("hiresscope", "x-hiresscope-signature"),
        ("tenzo", "x-webhook-signature"),
    ] {
        let verifier = verifier(scheme, "whsec_test_ats");
        assert!(
            verify(&verifier, &[(header, hex)], body, None, 0).is_ok(),
            "{scheme}"
        );
        assert_eq!(
            sign(&verifier, "d-1", 0, body, None)[0],
            (header.to_string(), hex.to_string()),
            "{scheme}"
        );
    }
    let rejento = verifier("rejento", "whsec_test_ats");
    assert_eq!(
        sign(&rejento, "d-1", 0, body, None)[1],
        ("x-rejento-delivery-id".to_string(), "d-1".to_string())
    );
    let ok = verify(
        &rejento,
        &[
            ("x-rejento-signature", hex),
            ("x-rejento-delivery-id", "d-1"),
        ],
        body,
        None,
        0,
    )
    .unwrap();
    assert_eq!(ok.id.as_deref(), Some("d-1"));

    let shopify = verifier("shopify", "testApiSecretKey");
    let sig = s(v, "shopify_b64(secret='testApiSecretKey')");
    assert!(verify(&shopify, &[("x-shopify-hmac-sha256", sig)], body, None, 0).is_ok());
    assert_eq!(sign(&shopify, "w-1", 0, body, None)[0].1, sig);

    let intercom = verifier("intercom", "intercom_client_secret");
    let sig = s(v, "intercom(secret='intercom_client_secret')");
    assert!(verify(&intercom, &[("x-hub-signature", sig)], body, None, 0).is_ok());
    assert_eq!(sign(&intercom, "", 0, body, None)[0].1, sig);

    let zoom = verifier("zoom", "zoom_secret_token");
    let sig = s(v, "zoom(secret='zoom_secret_token', ts=1658940994)");
    assert!(verify(
        &zoom,
        &[
            ("x-zm-signature", sig),
            ("x-zm-request-timestamp", "1658940994")
        ],
        body,
        None,
        1_658_940_994
    )
    .is_ok());
    assert_eq!(sign(&zoom, "", 1_658_940_994, body, None)[0].1, sig);

    let paddle = verifier("paddle", "pdl_secret");
    let header = s(v, "paddle(secret='pdl_secret', ts=1698796800)");
    assert!(verify(
        &paddle,
        &[("paddle-signature", header)],
        body,
        None,
        1_698_796_800
    )
    .is_ok());

    // Linear trusts the signed body's webhookTimestamp (ms), not a header.
    let linear = verifier("linear", "lin_wh_secret");
    let sig = s(v, "linear(secret='lin_wh_secret')");
    let err = verify(&linear, &[("linear-signature", sig)], body, None, 0).unwrap_err();
    assert_eq!(
        err.code(),
        "malformed_timestamp",
        "the derived body has no webhookTimestamp"
    );
    let dated = r#"{"action":"create","webhookTimestamp":1700000000123}"#;
    let signed = sign(&linear, "", 0, dated, None);
    assert!(verify(
        &linear,
        &[("linear-signature", &signed[0].1)],
        dated,
        None,
        1_700_000_010
    )
    .is_ok());
    assert_eq!(
        verify(
            &linear,
            &[("linear-signature", &signed[0].1)],
            dated,
            None,
            1_700_001_000
        )
        .unwrap_err()
        .code(),
        "timestamp_out_of_tolerance"
    );
}

#[test]
fn tolerance_can_be_set_per_route() {
    let all = vectors();
    let v = &all["stripe_cross_library"];
    let ts = v["timestamp"].as_u64().unwrap();
    let strict = Verifier::new(
        &SchemeSpec::Named("stripe".into()),
        &[s(v, "secret")],
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    let header = [("stripe-signature", s(v, "Stripe-Signature"))];
    assert!(verify(&strict, &header, s(v, "payload"), None, ts + 10).is_ok());
    let err = verify(&strict, &header, s(v, "payload"), None, ts + 11).unwrap_err();
    assert_eq!(
        err.to_string(),
        "timestamp is 11s old, more than the 10s tolerance"
    );
    let err = verify(&strict, &header, s(v, "payload"), None, ts - 11).unwrap_err();
    assert_eq!(
        err.to_string(),
        "timestamp is 11s in the future, more than the 10s tolerance"
    );
}
