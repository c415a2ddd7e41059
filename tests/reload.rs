//! Live config reload under steady traffic: a rotated secret picked up by `SIGHUP`, a new
//! route and an endpoint's new secret by a ConfigMap-style symlink swap, a broken config
//! refused while traffic goes on; and the inbound TLS certificate read again when its
//! files change. No request may fail and no message may be lost on the way.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use support::{cli, eventually, make_certificates, post, sign, stays, Gateway, TestApp};

const WITHIN: Duration = Duration::from_secs(10);

/// A signed Rejento webhook with a unique id (and body); its status.
async fn webhook(
    client: &reqwest::Client,
    gateway: &Gateway,
    path: &str,
    secret: &str,
    id: &str,
) -> u16 {
    let body = format!(r#"{{"event":"candidate.created","id":"{id}"}}"#);
    let headers = sign("rejento", secret, id, body.as_bytes(), None);
    let url = gateway.url(path);
    post(client, &url, &headers, body.as_bytes())
        .await
        .status()
        .as_u16()
}

/// Inbound webhooks and outbound messages, one after the other until `stop`; every
/// answer that is not 200 (inbound) or 202 (outbound) is counted in `failed`.
fn steady_traffic(
    gateway: &Gateway,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
) -> tokio::task::JoinHandle<()> {
    let inbound = gateway.url("/hooks/rejento");
    let outbound = format!("http://{}/acme", gateway.outbound);
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let id = format!("steady-{n}");
            let body = format!(r#"{{"event":"candidate.created","id":"{id}"}}"#);
            let headers = sign("rejento", "secret-one", &id, body.as_bytes(), None);
            let status = post(&client, &inbound, &headers, body.as_bytes())
                .await
                .status();
            if status != 200 {
                eprintln!("inbound {id}: {status}");
                failed.fetch_add(1, Ordering::SeqCst);
            }
            let status = client
                .post(&outbound)
                .body(body)
                .send()
                .await
                .map(|r| r.status());
            if !matches!(status, Ok(s) if s == 202) {
                eprintln!("outbound {id}: {status:?}");
                failed.fetch_add(1, Ordering::SeqCst);
            }
            sent.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_routes_and_endpoints_change_live_and_a_broken_config_is_refused() {
    let app = TestApp::start().await;
    let receiver = TestApp::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let (current, next) = (secrets.path().join("current"), secrets.path().join("next"));
    std::fs::write(&current, "secret-one").unwrap();
    std::fs::write(&next, "not-yet").unwrap();
    let gateway = Gateway::builder(app.url())
        .routes(&format!(
            "    - name: rejento\n      path: /hooks/rejento\n      verify: {{ scheme: rejento, secrets: [\"file:{}\", \"file:{}\"] }}\n      dedupe: {{ id: \"header:X-Rejento-Delivery-Id\", ttl: 1h }}\n      rate_limit: {{ key: route, limit: 100000/s }}\n",
            current.display(),
            next.display()
        ))
        .endpoints(&format!(
            "    - {{ name: acme, url: \"{}/hooks\", sign: {{ scheme: rejento, secret: endpoint-one }} }}\n",
            receiver.url()
        ))
        .config_map()
        .start()
        .await;
    let client = reqwest::Client::new();
    let metrics = gateway.metrics().await;
    let hash = |metrics: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("hookgate_config_info{"))
            .unwrap_or_else(|| panic!("no config hash in:\n{metrics}"))
            .to_string()
    };
    let first_hash = hash(&metrics);

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let traffic = steady_traffic(&gateway, stop.clone(), sent.clone(), failed.clone());

    // SIGHUP: the secret file's new content (the config text is the same: only the signal
    // can tell hookgate to read it).
    assert_eq!(
        webhook(&client, &gateway, "/hooks/rejento", "secret-two", "rot-1").await,
        401
    );
    std::fs::write(&next, "secret-two").unwrap();
    // Longer than the file poll's second: the poll sees the same config text.
    stays(
        "without SIGHUP nothing is read again",
        Duration::from_millis(1500),
        async || webhook(&client, &gateway, "/hooks/rejento", "secret-two", "rot-2").await == 401,
    )
    .await;
    gateway.signal("HUP");
    eventually("the rotated secret verifies", WITHIN, async || {
        webhook(
            &client,
            &gateway,
            "/hooks/rejento",
            "secret-two",
            &format!("rot-{}", rand_id()),
        )
        .await
            == 200
    })
    .await;
    gateway
        .metrics_eventually("hookgate_config_reloads_total{result=\"applied\"} 1")
        .await;

    // A ConfigMap update: a new route, and the endpoint's secret changed.
    let text = gateway.config_text();
    let updated = text
        .replace("secret: endpoint-one", "secret: endpoint-two")
        .replace(
            "  routes:\n",
            "  routes:\n    - { name: added, path: /hooks/added, verify: none }\n",
        );
    assert_ne!(updated, text);
    let added = gateway.url("/hooks/added");
    let added_status = async || post(&client, &added, &[], b"{}").await.status();
    assert_eq!(added_status().await, 404);
    gateway.swap_config_map(&updated);
    eventually("the new route answers", WITHIN, async || {
        added_status().await == 200
    })
    .await;
    let metrics = gateway
        .metrics_eventually("hookgate_config_reloads_total{result=\"applied\"} 2")
        .await;
    assert_ne!(
        hash(&metrics),
        first_hash,
        "the running config's hash changed"
    );
    // Messages accepted from now on are signed with the endpoint's new secret.
    let sent_after = client
        .post(format!("http://{}/acme", gateway.outbound))
        .body("{\"after\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(sent_after.status(), 202);
    eventually(
        "the message signed with the new secret",
        WITHIN,
        async || {
            receiver
                .received()
                .iter()
                .any(|r| r.body.as_ref() == b"{\"after\":1}")
        },
    )
    .await;
    let delivered = receiver
        .received()
        .into_iter()
        .find(|r| r.body.as_ref() == b"{\"after\":1}")
        .unwrap();
    assert!(delivered.verified_id("rejento", "endpoint-two").is_some());

    // A broken config is refused; the running one (with the added route) stays.
    gateway.swap_config_map(&updated.replace(
        "  routes:\n",
        "  routes:\n    - { name: broken, path: /x, verify: { scheme: nope } }\n",
    ));
    gateway
        .metrics_eventually("hookgate_config_reloads_total{result=\"refused\"} 1")
        .await;
    eventually("the refusal logged", WITHIN, async || {
        gateway.log().contains("config reload refused")
    })
    .await;
    assert_eq!(added_status().await, 200);
    // A change that needs a restart is named, and the rest applies.
    gateway.swap_config_map(&updated.replace("threads: 1", "threads: 2"));
    eventually("the restart-only key named", WITHIN, async || {
        gateway.log().contains("needs_restart=[\"server\"]")
    })
    .await;

    // Traffic still flows after the last reload.
    let so_far = sent.load(Ordering::SeqCst);
    eventually("more traffic after the reloads", WITHIN, async || {
        sent.load(Ordering::SeqCst) >= so_far + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent > 50, "only {sent} rounds of traffic");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the reloads:\n{}",
        gateway.log()
    );
    // Every message accepted was delivered: none lost in a swap.
    let expected = sent as usize + 1;
    eventually("every message delivered", WITHIN, async || {
        receiver.received().len() >= expected
    })
    .await;
    let (_, deliveries) = gateway
        .admin(Method::GET, "/admin/deliveries?state=dead")
        .await;
    assert_eq!(
        deliveries["deliveries"].as_array().map_or(0, Vec::len),
        0,
        "{deliveries}"
    );
    assert!(
        !gateway.log().contains("secret-two"),
        "secrets stay out of the log"
    );
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The status curl gets over HTTPS trusting only `ca`; 0 when the handshake fails.
fn https_status(port: u16, ca: &std::path::Path) -> u16 {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}/hooks/test"))
        .args(["-X", "POST", "-d", "{}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbound_certificate_is_read_again_when_its_files_change() {
    let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make_certificates(old.path());
    make_certificates(new.path());
    let served = tempfile::tempdir().unwrap();
    let (cert, key) = (served.path().join("tls.crt"), served.path().join("tls.key"));
    std::fs::copy(old.path().join("server.pem"), &cert).unwrap();
    std::fs::copy(old.path().join("server.key"), &key).unwrap();
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .inbound(&format!(
            "  tls: {{ cert: \"{}\", key: \"{}\" }}\n",
            cert.display(),
            key.display()
        ))
        .start()
        .await;
    let port = gateway.inbound.port();
    assert_eq!(https_status(port, &old.path().join("ca.pem")), 200);
    assert_eq!(https_status(port, &new.path().join("ca.pem")), 0);

    // cert-manager renews: new files, from another CA (so the test can tell them apart).
    // A half-written pair (the certificate first) keeps the old one served meanwhile.
    std::fs::copy(new.path().join("server.pem"), &cert).unwrap();
    // The files are looked at on a handshake, at most once a second: shake hands until
    // one has seen the mismatched pair, each served the old certificate.
    eventually("the mismatched pair seen", WITHIN, async || {
        assert_eq!(
            https_status(port, &old.path().join("ca.pem")),
            200,
            "a mismatched pair is not served"
        );
        gateway.log().contains("serving the previous one")
    })
    .await;
    std::fs::copy(new.path().join("server.key"), &key).unwrap();
    eventually("the renewed certificate served", WITHIN, async || {
        https_status(port, &new.path().join("ca.pem")) == 200
    })
    .await;
    assert_eq!(https_status(port, &old.path().join("ca.pem")), 0);
}

const GUARDED: &str = "    - { name: public, path: /public/*, verify: none }\n    - { name: hooksall, path: /hooks/*, verify: none }\n    - name: rejento\n      path: /hooks/rejento\n      verify: { scheme: rejento, secrets: [secret-one] }\n      dedupe: { id: \"header:X-Rejento-Delivery-Id\", ttl: 1h }\n";

/// The status of an unsigned POST (with a fresh delivery id) to the signed route.
async fn unsigned(client: &reqwest::Client, gateway: &Gateway) -> u16 {
    let id = ("X-Rejento-Delivery-Id".to_string(), rand_id().to_string());
    post(client, &gateway.url("/hooks/rejento"), &[id], b"{}")
        .await
        .status()
        .as_u16()
}

/// Replaces the config file as an atomic writer does: a new file, renamed over it.
fn replace_atomically(gateway: &Gateway, text: &str) {
    let next = gateway.config.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, &gateway.config).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_caught_half_written_never_opens_a_signed_route() {
    use std::io::Write;
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).routes(GUARDED).start().await;
    let client = reqwest::Client::new();
    assert_eq!(unsigned(&client, &gateway).await, 401);
    // The file is rewritten in place and the writer stops before the signed route for
    // 6 s: what is on disk meanwhile is a valid config with /hooks/rejento left to the
    // unsigned catch-all. (Over 2 s, the settle time: the poll does read it whole.)
    let text = gateway.config_text();
    let cut = text.find("    - name: rejento").unwrap();
    let mut file = std::fs::File::create(&gateway.config).unwrap();
    file.write_all(&text.as_bytes()[..cut]).unwrap();
    file.flush().unwrap();
    let paused = std::time::Instant::now();
    while paused.elapsed() < Duration::from_millis(6000) {
        assert_eq!(
            unsigned(&client, &gateway).await,
            401,
            "an unsigned request reached the app mid-write:\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    file.write_all(&text.as_bytes()[cut..]).unwrap();
    drop(file);
    // The half-written file settled (2 s unchanged) and was held, named and counted.
    let metrics = gateway
        .metrics_eventually("hookgate_config_reloads_total{result=\"held\"} 1")
        .await;
    assert!(!metrics.contains("result=\"applied\""), "{metrics}");
    let log = gateway.log();
    assert!(log.contains("config reload held"), "{log}");
    assert!(
        log.contains(
            "/hooks/rejento (route rejento: verify rejento, dedupe -> route hooksall: verify none)"
        ),
        "{log}"
    );
    for _ in 0..10 {
        assert_eq!(unsigned(&client, &gateway).await, 401);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(app.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_weakening_change_is_held_until_sighup_or_allow_weaker() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url()).routes(GUARDED).start().await;
    let client = reqwest::Client::new();
    let original = gateway.config_text();
    let weaker = original.replace(
        "verify: { scheme: rejento, secrets: [secret-one] }",
        "verify: none",
    );
    replace_atomically(&gateway, &weaker);
    gateway
        .metrics_eventually("hookgate_config_reloads_total{result=\"held\"} 1")
        .await;
    assert_eq!(unsigned(&client, &gateway).await, 401);
    // Asked through the admin API without --allow-weaker: still held, with the paths.
    let (ok, out) = cli(&gateway, &["reload"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("reload_held") && out.contains("/hooks/rejento"),
        "{out}"
    );
    assert_eq!(unsigned(&client, &gateway).await, 401);
    // SIGHUP is the operator's explicit intent.
    gateway.signal("HUP");
    eventually("the weaker config applied on SIGHUP", WITHIN, async || {
        unsigned(&client, &gateway).await == 200
    })
    .await;
    // A stronger config applies from the file on its own...
    replace_atomically(&gateway, &original);
    eventually("the signed route restored", WITHIN, async || {
        unsigned(&client, &gateway).await == 401
    })
    .await;
    // ...and `hookgate reload --allow-weaker` applies a weaker one.
    let no_dedupe = original.replace(
        "      dedupe: { id: \"header:X-Rejento-Delivery-Id\", ttl: 1h }\n",
        "",
    );
    std::fs::write(gateway.config.with_extension("next"), &no_dedupe).unwrap();
    std::fs::rename(gateway.config.with_extension("next"), &gateway.config).unwrap();
    let (ok, out) = cli(&gateway, &["reload", "--allow-weaker"]);
    assert!(ok, "{out}");
    assert!(out.contains("reloaded"), "{out}");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("hookgate_config_reloads_total{result=\"applied\"} 3"),
        "{metrics}"
    );
}
