//! `store.encryption`: subscriptions' signing secrets and receiver auth, payloads, inline
//! secrets and receivers' answers are sealed in the redb files and in Redis (read raw, and
//! `DUMP`ed key by key); subscriptions are sealed in place when keys are first given and
//! resealed with a new first key; a store whose key is missing does not start.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use support::{Gateway, GatewayBuilder, TestApp, TestRedis};

// 32 bytes of 0x01 and 0x02, encoded with Python's base64 module.
const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const SIGNING_SECRET: &str = "whsec_c2lnbmluZy1rZXktZm9yLXRoZS1hdC1yZXN0LXRlc3Q=";
const PASSWORD: &str = "pw-Plaintext-7781";
const HEADER_VALUE: &str = "hdr-Plaintext-5521";
const CLIENT_SECRET: &str = "cs-Plaintext-9034";
const PAYLOAD: &str = "payload-Plaintext-4410";
const INLINE_SECRET: &str = "inline-Plaintext-8812";
const ANSWER: &str = "answer-Plaintext-3306";

fn gateway(keys: Option<&[&str]>) -> GatewayBuilder {
    let builder = Gateway::builder("http://127.0.0.1:9")
        .endpoints("    []\n")
        .outbound("  allow_private_destinations: [127.0.0.0/8]\n");
    match keys {
        None => builder,
        Some(keys) => {
            let names: Vec<String> = (0..keys.len())
                .map(|i| format!("\"${{STORE_KEY_{i}}}\""))
                .collect();
            let mut builder =
                builder.store_keys(&format!("encryption: {{ keys: [{}] }}", names.join(", ")));
            for (i, key) in keys.iter().enumerate() {
                builder = builder.env(&format!("STORE_KEY_{i}"), key);
            }
            builder
        }
    }
}

/// Two subscriptions holding every kind of secret; the one to `app` gets `a.b` events.
async fn subscribe(gateway: &Gateway, app: &TestApp) {
    gateway
        .subscribe(json!({
            "url": app.url() + "/hooks",
            "event_types": ["a.*"],
            "secret": SIGNING_SECRET,
            "auth": { "basic": { "user": "acme", "password": PASSWORD }, "headers": { "X-Key": HEADER_VALUE } },
        }))
        .await;
    gateway
        .subscribe(json!({
            "url": app.url() + "/other",
            "event_types": ["never.*"],
            "auth": { "oauth2": { "token_url": app.url() + "/token", "client_id": "c", "client_secret": CLIENT_SECRET } },
        }))
        .await;
}

/// Every kind of secret the store keeps: the subscriptions; a payload, delivered and so
/// in the history; and a message with an inline secret whose receiver answers 503, so it
/// waits in the queue with that answer.
async fn traffic(gateway: &Gateway, app: &TestApp, failing: &TestApp) {
    subscribe(gateway, app).await;
    let payload = format!("{{\"note\":\"{PAYLOAD}\"}}");
    let (status, answer) = gateway
        .publish(&[("Hookgate-Event-Type", "a.b")], &payload)
        .await;
    assert_eq!(status, 202, "{answer}");
    failing.respond_with_body(503, ANSWER);
    let response = reqwest::Client::new()
        .post(format!("http://{}/", gateway.outbound))
        .header("Hookgate-Destination", failing.url() + "/in")
        .header("Hookgate-Secret", INLINE_SECRET)
        .header("Hookgate-Scheme", "github")
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<serde_json::Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Read back through the API, opened: the answer, and the delivered payload's row.
    support::eventually(
        "the answer is recorded",
        Duration::from_secs(10),
        async || {
            let (_, delivery) = gateway
                .admin(reqwest::Method::GET, &format!("/admin/deliveries/{id}"))
                .await;
            delivery["attempts"][0]["response"].as_str() == Some(ANSWER)
        },
    )
    .await;
    support::eventually(
        "the delivered event is in the history",
        Duration::from_secs(10),
        async || {
            let (_, page) = gateway
                .admin(reqwest::Method::GET, "/admin/deliveries?state=delivered")
                .await;
            page["deliveries"].as_array().is_some_and(|d| !d.is_empty())
        },
    )
    .await;
}

/// Publishes an `a.b` event and checks that it arrives signed with the signing secret and
/// with the auth headers: the store opened what it sealed.
async fn delivers(gateway: &Gateway, app: &TestApp) {
    let before = app.received().len();
    let (status, answer) = gateway
        .publish(&[("Hookgate-Event-Type", "a.b")], "{}")
        .await;
    assert_eq!(status, 202, "{answer}\n{}", gateway.log());
    app.wait_for(before + 1).await;
    let received = app.received()[before].clone();
    assert!(received
        .verified_id("standard-webhooks", SIGNING_SECRET)
        .is_some());
    assert_eq!(received.header("x-key"), Some(HEADER_VALUE));
}

/// Every secret that is found in `bytes`, as it is, in base64 or in hex.
fn readable_secrets(bytes: &[u8]) -> Vec<String> {
    use base64::Engine;
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    [
        SIGNING_SECRET,
        PASSWORD,
        HEADER_VALUE,
        CLIENT_SECRET,
        PAYLOAD,
        INLINE_SECRET,
        ANSWER,
    ]
    .into_iter()
    .flat_map(|secret| {
        [
            secret.to_string(),
            base64::engine::general_purpose::STANDARD.encode(secret),
            const_hex::encode(secret),
        ]
    })
    .filter(|form| contains(form.as_bytes()))
    .collect()
}

fn files_under(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn stop(mut gateway: Gateway) {
    let (status, _) = gateway.terminate(Duration::from_secs(10));
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redb_files_hold_no_readable_secret_with_keys_and_do_without() {
    let (app, failing) = (TestApp::start().await, TestApp::start().await);
    for keys in [Some(&[KEY_A][..]), None] {
        let dir = tempfile::tempdir().unwrap();
        let gateway = gateway(keys).store_dir(dir.path()).start().await;
        traffic(&gateway, &app, &failing).await;
        delivers(&gateway, &app).await;
        stop(gateway);
        let found = readable_secrets(&files_under(dir.path()));
        match keys {
            Some(_) => assert!(found.is_empty(), "readable at rest: {found:?}"),
            // The same test finds them in clear: it can fail.
            None => assert!(
                [PASSWORD, PAYLOAD, INLINE_SECRET, ANSWER]
                    .iter()
                    .all(|s| found.contains(&s.to_string())),
                "{found:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_holds_no_readable_secret_in_any_dumped_key() {
    let (app, failing, redis) = (
        TestApp::start().await,
        TestApp::start().await,
        TestRedis::start(),
    );
    for (keys, prefix) in [(Some(&[KEY_A][..]), "sealed:"), (None, "clear:")] {
        let gateway = gateway(keys).redis(&redis.url, prefix).start().await;
        traffic(&gateway, &app, &failing).await;
        delivers(&gateway, &app).await;
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(keys.iter().any(|k| k.contains("subscriptions")), "{keys:?}");
        // DUMP compresses long strings (LZF): each value is read as well.
        let mut dumped = Vec::new();
        for key in &keys {
            let dump: Option<Vec<u8>> = redis::cmd("DUMP")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            dumped.extend(dump.unwrap_or_default());
            let kind: String = redis::cmd("TYPE")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            let read = match kind.as_str() {
                "hash" => redis::cmd("HGETALL").arg(key).clone(),
                "string" => redis::cmd("GET").arg(key).clone(),
                "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone(),
                "zset" => redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).clone(),
                "set" => redis::cmd("SMEMBERS").arg(key).clone(),
                "none" => continue, // gone since KEYS listed it
                other => panic!("{key} is a {other}"),
            };
            let values: redis::Value = read.query_async(&mut connection).await.unwrap();
            dumped.extend(format!("{values:?}").into_bytes());
            if let redis::Value::Array(items) = values {
                for item in items {
                    if let redis::Value::BulkString(bytes) = item {
                        dumped.extend(bytes);
                    }
                }
            } else if let redis::Value::BulkString(bytes) = values {
                dumped.extend(bytes);
            }
        }
        let found = readable_secrets(&dumped);
        if prefix == "sealed:" {
            assert!(found.is_empty(), "readable in Redis: {found:?}");
        } else {
            let expected = [PASSWORD, PAYLOAD, INLINE_SECRET, ANSWER];
            assert!(
                expected.iter().all(|s| found.contains(&s.to_string())),
                "{found:?}"
            );
        }
    }
}

/// Waits until the gateway has sealed its store as its keys say (in the background from
/// the start).
async fn sealed(gateway: &Gateway) {
    support::eventually("the store is sealed", Duration::from_secs(10), async || {
        gateway
            .log()
            .contains("every value the store keeps is sealed with the first key")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_is_sealed_in_place_resealed_with_a_new_key_and_refuses_a_missing_one() {
    let (app, failing) = (TestApp::start().await, TestApp::start().await);
    let dir = tempfile::tempdir().unwrap();
    // Written in clear, before there are keys: subscriptions, a delivered payload in the
    // history, and a waiting message with an inline secret and an answer.
    let first = gateway(None).store_dir(dir.path()).start().await;
    traffic(&first, &app, &failing).await;
    let (status, idle) = first
        .admin(reqwest::Method::GET, "/admin/store/rotate-key")
        .await;
    assert_eq!((status, idle["state"].as_str()), (200, Some("idle")));
    let (status, refused) = first
        .admin(reqwest::Method::POST, "/admin/store/rotate-key")
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("store_not_encrypted"))
    );
    stop(first);
    // The first start with a key seals what is there, and still delivers.
    let with_key = gateway(Some(&[KEY_A])).store_dir(dir.path()).start().await;
    sealed(&with_key).await;
    delivers(&with_key, &app).await;
    let (status, listed) = with_key
        .admin(reqwest::Method::GET, "/admin/subscriptions")
        .await;
    assert_eq!(
        (status, listed["subscriptions"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    let (status, waiting) = with_key
        .admin(reqwest::Method::GET, "/admin/deliveries")
        .await;
    assert_eq!(status, 200, "{waiting}");
    let (status, delivered) = with_key
        .admin(reqwest::Method::GET, "/admin/deliveries?state=delivered")
        .await;
    assert_eq!(status, 200, "{delivered}");
    stop(with_key);
    let found = readable_secrets(&files_under(dir.path()));
    assert!(
        found.is_empty(),
        "still readable after sealing in place: {found:?}"
    );
    // A new first key: everything is resealed with it at start. The old key stays listed:
    // the store's key check names it until `hookgate store rotate-key` moves it.
    let both = gateway(Some(&[KEY_B, KEY_A]))
        .store_dir(dir.path())
        .start()
        .await;
    sealed(&both).await;
    delivers(&both, &app).await;
    let text = both.config_text();
    stop(both);
    // Without that key, or without keys, the store does not start, and says why.
    let new_key_only = text.replace(", \"${STORE_KEY_1}\"", "");
    let keyless = text.replace(
        ", encryption: { keys: [\"${STORE_KEY_0}\", \"${STORE_KEY_1}\"] }",
        "",
    );
    assert!(new_key_only != text && keyless != text);
    for (config, expected) in [
        (&new_key_only, "sealed with key"),
        (
            &keyless,
            "the store is encrypted, and store.encryption gives no keys",
        ),
    ] {
        let file = dir.path().join("restart.yaml");
        std::fs::write(&file, config).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["run", "--config", file.to_str().unwrap()])
            .env("STORE_KEY_0", KEY_B)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{log}");
        assert!(
            log.contains(expected) && log.contains("cannot start"),
            "{log}"
        );
    }
}

#[test]
fn check_refuses_a_key_that_is_not_32_bytes_of_base64() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(
        &file,
        "store: { encryption: { keys: [\"c2hvcnQ=\", \"${NOT_SET_ANYWHERE}\"] } }\noutbound: { endpoints: [] }\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        text.contains("store.encryption.keys[0]: 5 bytes once decoded"),
        "{text}"
    );
    assert!(
        text.contains("store.encryption.keys[1]") && text.contains("NOT_SET_ANYWHERE"),
        "{text}"
    );
    assert!(!text.contains("c2hvcnQ="), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_a_missing_key_keeps_readyz_failing_with_the_reason() {
    let (app, redis) = (TestApp::start().await, TestRedis::start());
    let first = gateway(Some(&[KEY_A]))
        .redis(&redis.url, "keycheck:")
        .start()
        .await;
    subscribe(&first, &app).await;
    let (text, admin) = (first.config_text(), first.admin);
    stop(first);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("restart.yaml");
    std::fs::write(&file, text).unwrap();
    let mut other_key = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["run", "--config", file.to_str().unwrap()])
        .env("STORE_KEY_0", KEY_B)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::eventually(
        "/readyz fails and says why",
        Duration::from_secs(10),
        async || {
            let Ok(answer) = reqwest::get(format!("http://{admin}/readyz")).await else {
                return false;
            };
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            status == 503 && body.contains("which store.encryption.keys does not hold")
        },
    )
    .await;
    let _ = other_key.kill();
    let _ = other_key.wait();
}

/// Messages accepted under one key and delivered after a restart that put a new key
/// first: nothing is lost, every one arrives once and verifies, and nothing failed to open.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_with_messages_waiting_loses_none() {
    let (app, dir) = (TestApp::start().await, tempfile::tempdir().unwrap());
    let endpoint = support::acme_endpoint(&app, "/hooks", "");
    let with_keys = |keys: &'static [&'static str]| {
        gateway(Some(keys))
            .endpoints(&endpoint)
            .store_dir(dir.path())
    };
    let send = async |gateway: &Gateway, count: usize| {
        for i in 0..count {
            let response = support::send_to_acme(gateway, &format!("{{\"n\":{i}}}")).await;
            assert_eq!(response.status(), 202);
        }
    };
    let first = with_keys(&[KEY_A]).start().await;
    let (status, _) = first
        .admin(reqwest::Method::POST, "/admin/endpoints/acme/disable")
        .await;
    assert_eq!(status, 200);
    send(&first, 200).await;
    stop(first);
    let rotated = with_keys(&[KEY_B, KEY_A]).start().await;
    send(&rotated, 200).await;
    let (status, _) = rotated
        .admin(reqwest::Method::POST, "/admin/endpoints/acme/enable")
        .await;
    assert_eq!(status, 200);
    support::eventually("all 400 arrive", Duration::from_secs(20), async || {
        app.received().len() >= 400
    })
    .await;
    each_arrived_once(&app, 400, &rotated).await;
    stop(rotated);
}

/// `app` received `count` acme messages, each verifying and each once, and `gateway` met no
/// value it could not open.
async fn each_arrived_once(app: &TestApp, count: usize, gateway: &Gateway) {
    let received = app.received();
    let ids: std::collections::HashSet<String> = received
        .iter()
        .map(|r| r.verified_id("rejento", "acme-secret").unwrap())
        .collect();
    assert_eq!((received.len(), ids.len()), (count, count));
    assert!(!gateway
        .metrics()
        .await
        .contains("hookgate_store_decrypt_errors_total"));
}

/// `hookgate store rotate-key`, run by the CLI as a user would, and followed to its end.
fn rotate_key(admin: String) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["store", "rotate-key"])
        .env("HOOKGATE_ADMIN_URL", admin)
        .env("HOOKGATE_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A key rotation while messages are accepted and delivered: under key A the store holds
/// every kind of secret and 200 messages wait; restarted with `[B, A]`, 200 more are sent and
/// the endpoint enabled while `hookgate store rotate-key` runs. Every message arrives once
/// and verifies, and then the store starts with key B alone and reads everything it holds.
async fn rotation_under_load(store: impl Fn(GatewayBuilder) -> GatewayBuilder) {
    let (app, acme, failing) = (
        TestApp::start().await,
        TestApp::start().await,
        TestApp::start().await,
    );
    let endpoint = support::acme_endpoint(&acme, "/hooks", "");
    let with_keys = |keys: &'static [&'static str]| store(gateway(Some(keys)).endpoints(&endpoint));
    let send = async |gateway: &Gateway, from: usize| {
        for i in from..from + 200 {
            let response = support::send_to_acme(gateway, &format!("{{\"n\":{i}}}")).await;
            assert_eq!(response.status(), 202);
        }
    };
    let first = with_keys(&[KEY_A]).start().await;
    traffic(&first, &app, &failing).await;
    let (status, _) = first
        .admin(reqwest::Method::POST, "/admin/endpoints/acme/disable")
        .await;
    assert_eq!(status, 200);
    send(&first, 0).await;
    stop(first);

    let rotated = with_keys(&[KEY_B, KEY_A]).start().await;
    let rotation = tokio::task::spawn_blocking({
        let admin = rotated.admin_url("");
        move || rotate_key(admin)
    });
    let (status, _) = rotated
        .admin(reqwest::Method::POST, "/admin/endpoints/acme/enable")
        .await;
    assert_eq!(status, 200);
    send(&rotated, 200).await;
    let (ok, printed) = rotation.await.unwrap();
    assert!(ok, "{printed}\n{}", rotated.log());
    assert!(
        printed.contains("older keys can leave store.encryption.keys"),
        "{printed}"
    );
    let (status, pass) = rotated
        .admin(reqwest::Method::GET, "/admin/store/rotate-key")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (pass["state"].as_str(), pass["key_check_moved"].as_bool()),
        (Some("done"), Some(true)),
        "{pass}"
    );
    assert!(pass["queue"]["scanned"].as_u64() > Some(0), "{pass}");
    support::eventually("all 400 arrive", Duration::from_secs(30), async || {
        acme.received().len() >= 400
    })
    .await;
    stop(rotated);

    // Key A is gone from the list: the store starts, and everything it holds opens.
    let new_key_only = with_keys(&[KEY_B]).start().await;
    delivers(&new_key_only, &app).await;
    let (status, waiting) = new_key_only
        .admin(reqwest::Method::GET, "/admin/deliveries")
        .await;
    assert_eq!(status, 200, "{waiting}");
    let answered = waiting["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["attempts"][0]["response"].as_str() == Some(ANSWER));
    assert!(answered, "{waiting}");
    let (status, delivered) = new_key_only
        .admin(
            reqwest::Method::GET,
            "/admin/deliveries?state=delivered&limit=1000",
        )
        .await;
    assert_eq!(status, 200, "{delivered}");
    assert!(
        delivered["deliveries"].as_array().unwrap().len() > 400,
        "{delivered}"
    );
    each_arrived_once(&acme, 400, &new_key_only).await;
    stop(new_key_only);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_under_load_on_the_embedded_store_lets_the_old_key_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    rotation_under_load(move |builder| builder.store_dir(&path)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_under_load_on_redis_lets_the_old_key_go() {
    let redis = TestRedis::start();
    let url = redis.url.clone();
    rotation_under_load(move |builder| builder.redis(&url, "rotate:")).await;
}
