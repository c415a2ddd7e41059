//! The tenants' portal: tokens the vendor issues a customer (`POST
//! /admin/tenants/{t}/portal`), that open `/portal/api/*` for that tenant's own
//! subscriptions and deliveries and nothing else, expire, and can be revoked.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use support::{cli, eventually, free_port, Gateway, GatewayBuilder, TestApp, ADMIN_TOKEN};

const SIGNING_KEY: &str = "portal-signing-key-of-32-bytes-or-more";
const WITHIN: Duration = Duration::from_secs(5);

/// A gateway with subscriptions only (receivers on 127.0.0.1), a catalog, and the portal.
fn portal_gateway(portal: &str) -> GatewayBuilder {
    Gateway::builder("http://127.0.0.1:9")
        .endpoints("    []\n")
        .outbound(
            "  allow_private_destinations: [127.0.0.0/8]\n  event_types:\n    - { name: order.paid, description: An order was paid. }\n",
        )
        .admin(&format!("portal: {{ signing_key: {SIGNING_KEY}{portal} }}"))
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.001")
}

/// Issues a portal token for `tenant`: the admin API's answer.
async fn issue(gateway: &Gateway, tenant: &str, body: Value) -> Value {
    let path = format!("/admin/tenants/{tenant}/portal");
    let (status, answer) = gateway.admin_json(Method::POST, &path, &body).await;
    assert_eq!(status, 201, "{answer}");
    answer
}

/// A portal API call with `token` on `base` (`http://host:port`).
async fn portal_at(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}/portal/api/{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn portal(
    gateway: &Gateway,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    portal_at(&gateway.admin_url(""), token, method, path, body).await
}

fn token(answer: &Value) -> String {
    answer["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_token_reaches_only_its_own_subscriptions_and_deliveries() {
    let receiver = TestApp::start().await;
    let gateway = portal_gateway("").start().await;
    let a = token(&issue(&gateway, "acme", json!({})).await);

    // The tenant creates its own subscription: the tenant is filled in, the secret shown once.
    let url = format!("{}/acme", receiver.url());
    let (status, own) = portal(
        &gateway,
        &a,
        Method::POST,
        "subscriptions",
        Some(json!({ "url": url, "event_types": ["order.paid"] })),
    )
    .await;
    assert_eq!(status, 201, "{own}");
    assert_eq!(own["tenant"], "acme");
    assert!(
        own["secret"].as_str().unwrap().starts_with("whsec_"),
        "{own}"
    );
    let own_id = own["id"].as_str().unwrap().to_string();
    let (_, shown) = portal(
        &gateway,
        &a,
        Method::GET,
        &format!("subscriptions/{own_id}"),
        None,
    )
    .await;
    assert!(
        shown.get("secret").is_none() && shown.get("secrets").is_none(),
        "{shown}"
    );

    // Not for another tenant, and not the vendor's delivery policy.
    for (body, code) in [
        (
            json!({ "url": url, "event_types": ["*"], "tenant": "globex" }),
            "tenant_mismatch",
        ),
        (
            json!({ "url": url, "event_types": ["*"], "retry": { "max_attempts": 1000 } }),
            "field_not_allowed",
        ),
        (
            json!({ "url": url, "event_types": ["*"], "metadata": { "plan": "free" } }),
            "field_not_allowed",
        ),
    ] {
        let (status, answer) =
            portal(&gateway, &a, Method::POST, "subscriptions", Some(body)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some(code)),
            "{answer}"
        );
    }

    // Another tenant's subscription, made by the vendor, fails for good.
    let (status, other) = gateway
        .admin_json(Method::POST, "/admin/subscriptions", &json!({ "tenant": "globex", "url": "http://127.0.0.1:9/closed", "event_types": ["order.paid"], "retry": { "schedule": ["1s"], "max_attempts": 1 } }))
        .await;
    assert_eq!(status, 201, "{other}");
    let other_id = other["id"].as_str().unwrap().to_string();
    for (method, path) in [
        (Method::GET, format!("subscriptions/{other_id}")),
        (Method::PATCH, format!("subscriptions/{other_id}")),
        (Method::DELETE, format!("subscriptions/{other_id}")),
        (
            Method::POST,
            format!("subscriptions/{other_id}/rotate-secret"),
        ),
        (Method::POST, format!("subscriptions/{other_id}/test")),
        (Method::POST, format!("subscriptions/{other_id}/disable")),
        (Method::POST, format!("subscriptions/{other_id}/replay")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({ "description": "mine now" }));
        let (status, answer) = portal(&gateway, &a, method.clone(), &path, body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (404, Some("subscription_not_found")),
            "{method} {path}: {answer}"
        );
    }
    let (status, listed) = portal(
        &gateway,
        &a,
        Method::GET,
        "subscriptions?tenant=globex",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let listed = listed["subscriptions"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed.iter().all(|s| s["tenant"] == "acme"), "{listed:?}");
    // Its own it may change, but it may not give it away.
    let (status, changed) = portal(
        &gateway,
        &a,
        Method::PATCH,
        &format!("subscriptions/{own_id}"),
        Some(json!({ "description": "orders" })),
    )
    .await;
    assert_eq!(
        (status, changed["description"].as_str()),
        (200, Some("orders"))
    );
    let (status, _) = portal(
        &gateway,
        &a,
        Method::PATCH,
        &format!("subscriptions/{own_id}"),
        Some(json!({ "tenant": "globex" })),
    )
    .await;
    assert_eq!(status, 403);

    // One event for each tenant: acme's is delivered, globex's goes dead.
    for tenant in ["acme", "globex"] {
        let (status, answer) = gateway
            .publish(
                &[
                    ("Hookgate-Event-Type", "order.paid"),
                    ("Hookgate-Tenant", tenant),
                ],
                "{}",
            )
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    receiver.wait_for(1).await;
    let mut dead_id = String::new();
    eventually("globex's delivery is dead", WITHIN, async || {
        let (_, dead) = gateway
            .admin(Method::GET, "/admin/deliveries?state=dead&tenant=globex")
            .await;
        dead_id = dead["deliveries"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        !dead_id.is_empty()
    })
    .await;
    let mut delivered = Vec::new();
    eventually(
        "acme's delivery is listed as delivered",
        WITHIN,
        async || {
            let (_, list) = portal(
                &gateway,
                &a,
                Method::GET,
                "deliveries?state=delivered",
                None,
            )
            .await;
            delivered = list["deliveries"].as_array().cloned().unwrap_or_default();
            !delivered.is_empty()
        },
    )
    .await;
    assert!(
        delivered.iter().all(|d| d["event"]["tenant"] == "acme"),
        "{delivered:?}"
    );
    let own_delivery = delivered[0]["id"].as_str().unwrap();
    let (status, _) = portal(
        &gateway,
        &a,
        Method::GET,
        &format!("deliveries/{own_delivery}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, dead) = portal(
        &gateway,
        &a,
        Method::GET,
        "deliveries?state=dead&tenant=globex",
        None,
    )
    .await;
    assert_eq!(
        dead["deliveries"],
        json!([]),
        "acme sees none of globex's dead letters"
    );
    for (method, path) in [
        (Method::GET, format!("deliveries/{dead_id}")),
        (Method::POST, format!("deliveries/{dead_id}/retry")),
    ] {
        let (status, answer) = portal(&gateway, &a, method, &path, None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (404, Some("delivery_not_found")),
            "{path}: {answer}"
        );
    }
    let (status, replayed) = portal(
        &gateway,
        &a,
        Method::POST,
        "deliveries/replay",
        Some(json!({ "states": ["dead"] })),
    )
    .await;
    assert_eq!(
        (status, replayed["replayed"].as_u64()),
        (200, Some(0)),
        "{replayed}"
    );
    let (status, _) = portal(
        &gateway,
        &a,
        Method::POST,
        "deliveries/replay",
        Some(json!({ "tenant": "globex" })),
    )
    .await;
    assert_eq!(status, 403);
    // globex's own token replays it.
    let b = token(&issue(&gateway, "globex", json!({})).await);
    let (status, replayed) = portal(
        &gateway,
        &b,
        Method::POST,
        "deliveries/replay",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, replayed["replayed"].as_u64()),
        (200, Some(1)),
        "{replayed}"
    );
    // Its job is its own: acme neither lists nor reads it.
    let job = replayed["job"]["id"].as_str().unwrap();
    let (_, jobs) = portal(&gateway, &b, Method::GET, "jobs", None).await;
    assert_eq!(jobs["jobs"][0]["id"], job);
    let (_, jobs) = portal(&gateway, &a, Method::GET, "jobs", None).await;
    let listed = jobs["jobs"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .all(|j| j["id"] != job && j["filter"]["tenant"] == "acme"),
        "{jobs}"
    );
    for (method, path) in [
        (Method::GET, format!("jobs/{job}")),
        (Method::POST, format!("jobs/{job}/cancel")),
    ] {
        let (status, answer) = portal(&gateway, &a, method, &path, None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (404, Some("job_not_found"))
        );
    }
    // acme sends its own delivered one again, and only that.
    let (status, replayed) = portal(
        &gateway,
        &a,
        Method::POST,
        "deliveries/replay",
        Some(json!({ "states": ["delivered"] })),
    )
    .await;
    assert_eq!(
        (status, replayed["replayed"].as_u64()),
        (200, Some(1)),
        "{replayed}"
    );
    receiver.wait_for(2).await;

    // The catalog, but nothing of the operator's.
    let (status, types) = portal(&gateway, &a, Method::GET, "event-types", None).await;
    assert_eq!(
        (status, types["event_types"][0]["name"].as_str()),
        (200, Some("order.paid"))
    );
    for path in ["endpoints", "refusals", "overview", "queue", "routes"] {
        let (status, _) = portal(&gateway, &a, Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let response = reqwest::Client::new()
        .get(gateway.admin_url("/admin/subscriptions"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "a tenant token is not the operator's"
    );
    let (status, answer) = portal(&gateway, ADMIN_TOKEN, Method::GET, "subscriptions", None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_portal_token")),
        "the operator's token does not open the portal"
    );
    let log = gateway.log();
    assert!(
        !log.contains(&a) && !log.contains(&b) && !log.contains(SIGNING_KEY),
        "a token in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_revoked_forged_and_read_only_tokens_are_refused() {
    let gateway = portal_gateway("").start().await;
    let short = token(&issue(&gateway, "acme", json!({ "ttl": "1s" })).await);
    let old = token(&issue(&gateway, "acme", json!({ "ttl": "1h" })).await);
    let other = token(&issue(&gateway, "globex", json!({})).await);
    let looking = issue(&gateway, "acme", json!({ "read_only": true })).await;
    assert_eq!(looking["read_only"], true);
    let looking = token(&looking);
    assert_eq!(
        portal(&gateway, &short, Method::GET, "subscriptions", None)
            .await
            .0,
        200
    );

    // Read-only: it lists, and changes nothing.
    assert_eq!(
        portal(&gateway, &looking, Method::GET, "subscriptions", None)
            .await
            .0,
        200
    );
    let (status, answer) = portal(
        &gateway,
        &looking,
        Method::POST,
        "subscriptions",
        Some(json!({ "url": "http://127.0.0.1:9/", "event_types": ["*"] })),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("read_only_token"))
    );

    // Revoked: every earlier token of acme, not globex's, and a new one works.
    let (status, _) = gateway
        .admin(Method::POST, "/admin/tenants/acme/portal/revoke")
        .await;
    assert_eq!(status, 200);
    let (status, answer) = portal(&gateway, &old, Method::GET, "subscriptions", None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("portal_token_revoked"))
    );
    assert_eq!(
        portal(&gateway, &other, Method::GET, "subscriptions", None)
            .await
            .0,
        200
    );
    let fresh = token(&issue(&gateway, "acme", json!({})).await);
    assert_eq!(
        portal(&gateway, &fresh, Method::GET, "subscriptions", None)
            .await
            .0,
        200
    );

    // Expired.
    let expiring = token(&issue(&gateway, "acme", json!({ "ttl": "1s" })).await);
    eventually("the 1s token expires", WITHIN, async || {
        let (status, answer) =
            portal(&gateway, &expiring, Method::GET, "subscriptions", None).await;
        (status, answer["error"].as_str()) == (401, Some("portal_token_expired"))
    })
    .await;

    // Forged: another tenant's name under a real token's signature, or no token at all.
    let (claims, mac) = fresh.trim_start_matches("hgp_").split_once('.').unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut decoded: Value = serde_json::from_slice(&engine.decode(claims).unwrap()).unwrap();
    decoded["tenant"] = json!("globex");
    let forged = format!(
        "hgp_{}.{mac}",
        engine.encode(serde_json::to_vec(&decoded).unwrap())
    );
    for bad in [forged.as_str(), "", "hgp_x.y", ADMIN_TOKEN] {
        let (status, answer) = portal(&gateway, bad, Method::GET, "subscriptions", None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_portal_token")),
            "{bad}"
        );
    }

    // Issuing: a bad ttl, a bad tenant, an unknown field.
    for (tenant, body, code) in [
        ("acme", json!({ "ttl": "31d" }), "invalid_ttl"),
        ("acme", json!({ "ttl": 3600 }), "invalid_ttl"),
        ("acme", json!({ "read_only": "yes" }), "invalid_field"),
        ("acme", json!({ "scope": "all" }), "unknown_field"),
        ("a%20b", json!({}), "invalid_tenant"),
    ] {
        let path = format!("/admin/tenants/{tenant}/portal");
        let (status, answer) = gateway.admin_json(Method::POST, &path, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    let metrics = gateway.metrics().await;
    for outcome in ["served", "invalid", "expired", "revoked", "read_only"] {
        assert!(
            metrics.contains(&format!(
                "hookgate_portal_requests_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome}"
        );
    }
    let log = gateway.log();
    for t in [&old, &other, &looking, &fresh, &expiring] {
        assert!(!log.contains(t.as_str()), "a token in the log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_listener_serves_the_portal_and_nothing_else() {
    let port = free_port();
    let gateway = portal_gateway(&format!(", listen: \"127.0.0.1:{port}\", frame_ancestors: [\"https://app.vendor.example\"], title: Acme Webhooks"))
        .start()
        .await;
    let issued = issue(&gateway, "acme", json!({})).await;
    let base = format!("http://127.0.0.1:{port}");
    let url = issued["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{base}/portal/#token=hgp_")),
        "{url}"
    );
    let (status, _) = portal_at(&base, &token(&issued), Method::GET, "subscriptions", None).await;
    assert_eq!(status, 200);
    let page = reqwest::get(format!("{base}/portal/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.ends_with("frame-ancestors https://app.vendor.example"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("Acme Webhooks"));
    for path in ["/admin/subscriptions", "/metrics", "/ui/", "/readyz"] {
        let response = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // On the admin port too, with 'none' nowhere since ancestors are set.
    let page = reqwest::get(gateway.admin_url("/portal/")).await.unwrap();
    assert_eq!(page.status(), 200);
}

#[test]
fn the_portal_needs_its_key_an_outbound_side_and_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    for (config, expected) in [
        ("admin: { token: t, portal: { signing_key: short } }\noutbound: { listen: 127.0.0.1:0 }\n", "at least 32 bytes"),
        ("admin: { token: t, portal: { signing_key: portal-signing-key-of-32-bytes-or-more, frame_ancestors: [\"*\"] } }\noutbound: { listen: 127.0.0.1:0 }\n", "expected an origin"),
        ("admin: { portal: { signing_key: portal-signing-key-of-32-bytes-or-more } }\noutbound: { listen: 127.0.0.1:0 }\n", "set admin.token"),
        ("admin: { token: t, portal: { signing_key: portal-signing-key-of-32-bytes-or-more } }\ninbound: { listen: 127.0.0.1:0, upstream: \"http://127.0.0.1:9\", routes: [{ name: a, path: /a, verify: none }] }\n", "configure outbound"),
    ] {
        let file = dir.path().join("hookgate.yaml");
        std::fs::write(&file, config).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["check", "-c", file.to_str().unwrap()])
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{config}");
        assert!(printed.contains(expected), "{config}: {printed}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_issues_and_revokes_links() {
    let gateway = portal_gateway("").start().await;
    let (ok, printed) = cli(
        &gateway,
        &["portal", "link", "acme", "--ttl", "2h", "--read-only"],
    );
    assert!(
        ok && printed.contains("read-only access, until"),
        "{printed}"
    );
    let url = printed.lines().next().unwrap();
    let token = url.split_once("#token=").unwrap().1;
    let (status, _) = portal(&gateway, token, Method::GET, "subscriptions", None).await;
    assert_eq!(status, 200);
    let (ok, printed) = cli(&gateway, &["portal", "revoke", "acme"]);
    assert!(ok && printed.contains("revoked"), "{printed}");
    let (status, _) = portal(&gateway, token, Method::GET, "subscriptions", None).await;
    assert_eq!(status, 401);
    let (ok, printed) = cli(&gateway, &["portal", "link", "acme", "--ttl", "31d"]);
    assert!(!ok && printed.contains("invalid_ttl"), "{printed}");
}
