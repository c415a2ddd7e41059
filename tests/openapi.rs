//! The API contract: `docs/openapi.json` is what its source (`docs/openapi/build.py`)
//! writes, the admin port serves it as it is checked in, and its operations are the routes
//! the code serves, both ways: every route the routers' match arms name is documented, and
//! every documented operation gets an answer from the live binary that is not "no such
//! route".

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use support::{Gateway, TestApp, ADMIN_TOKEN};

const SIGNING_KEY: &str = "portal-signing-key-of-32-bytes-or-more";
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
/// Documented paths that no admin or portal match arm names: the document itself, the
/// outbound listener's two, and the two pages. The live test reaches each.
const SERVED_ELSEWHERE: [&str; 5] = ["/admin/openapi.json", "/events", "/{}", "/ui/", "/portal/"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn document() -> Value {
    serde_json::from_slice(&std::fs::read(root().join("docs/openapi.json")).unwrap()).unwrap()
}

/// A path with each parameter written `{}`.
fn normalized(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// Every (method, normalized path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), normalized(path)));
            }
        }
    }
    operations
}

/// Splits on `sep` outside parentheses.
fn split_top(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

/// The string literals of `"a" | "b"` (also inside `name @ ("a" | "b")`); `None` if the
/// pattern is a binding (a path parameter).
fn literals(pattern: &str) -> Option<Vec<String>> {
    let alternatives = match pattern.split_once(" @ ") {
        Some((_, inner)) => inner.trim_start_matches('(').trim_end_matches(')'),
        None => pattern,
    };
    if !alternatives.starts_with('"') {
        assert!(
            alternatives
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a route pattern this test does not read: {pattern}"
        );
        return None;
    }
    Some(
        split_top(alternatives, '|')
            .into_iter()
            .map(|s| s.trim_matches('"').to_string())
            .collect(),
    )
}

/// The routes that `source`'s match arms name, under `prefix`: slice patterns such as
/// `("GET" | "DELETE", ["subscriptions", id, "enable" | "disable"])`, and whole paths
/// (`"/readyz" =>`, any method).
fn routes_in(source: &str, prefix: &str) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let (mut routes, mut whole) = (BTreeSet::new(), BTreeSet::new());
    // One space between tokens, none inside brackets' edges: rustfmt's line breaks aside.
    let flat = source
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace("[ ", "[")
        .replace(" )", ")")
        .replace(" ]", "]");
    let mut rest = flat.as_str();
    while let Some(at) = rest.find("(\"") {
        rest = &rest[at + 1..];
        let Some(comma) = rest.find(", [") else { break };
        let methods: Vec<&str> = split_top(&rest[..comma], '|');
        let is_method =
            |m: &&str| ["\"GET\"", "\"POST\"", "\"PUT\"", "\"PATCH\"", "\"DELETE\""].contains(m);
        if methods.is_empty() || !methods.iter().all(is_method) {
            continue;
        }
        let inside = &rest[comma + 3..rest[comma..].find(']').unwrap() + comma];
        let mut paths = vec![String::new()];
        for segment in split_top(inside, ',').into_iter().filter(|s| !s.is_empty()) {
            let choices = literals(segment).unwrap_or_else(|| vec!["{}".to_string()]);
            paths = paths
                .iter()
                .flat_map(|p| choices.iter().map(move |c| format!("{p}/{c}")))
                .collect();
        }
        for method in &methods {
            for path in &paths {
                let path = format!("{}{}", prefix.trim_end_matches('/'), path);
                routes.insert((method.trim_matches('"').to_string(), path));
            }
        }
    }
    for line in source.lines() {
        let line = line.trim();
        if !line.starts_with("\"/") || !(line.contains("\" =>") || line.contains("\" |")) {
            continue;
        }
        let patterns = line.split("=>").next().unwrap();
        for pattern in split_top(patterns, '|') {
            whole.insert(pattern.trim_matches('"').to_string());
        }
    }
    (routes, whole)
}

#[test]
fn the_document_is_what_its_source_writes() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("openapi.json");
    let status = std::process::Command::new("python3")
        .arg(root().join("docs/openapi/build.py"))
        .arg(&written)
        .status()
        .unwrap();
    assert!(status.success());
    let (expected, checked_in) = (
        std::fs::read_to_string(&written).unwrap(),
        root().join("docs/openapi.json"),
    );
    if std::env::var_os("HOOKGATE_BLESS_DOCS").is_some() {
        std::fs::write(&checked_in, &expected).unwrap();
    }
    assert!(
        std::fs::read_to_string(&checked_in).unwrap() == expected,
        "docs/openapi.json is not what docs/openapi/build.py writes: run\n  HOOKGATE_BLESS_DOCS=1 cargo test --test openapi"
    );
}

#[test]
fn every_route_the_routers_name_is_documented_and_every_operation_is_routed() {
    let mut routes = BTreeSet::new();
    let mut whole = BTreeSet::new();
    for (file, prefix) in [
        ("src/admin/mod.rs", "/admin/"),
        ("src/admin/subscriptions.rs", "/admin/"),
        ("src/admin/portal/api.rs", "/portal/api/"),
    ] {
        let source = std::fs::read_to_string(root().join(file)).unwrap();
        let (found, paths) = routes_in(&source, prefix);
        routes.extend(found);
        whole.extend(paths);
    }
    assert!(routes.len() > 40, "{routes:?}");
    let routes: BTreeSet<(String, String)> = routes
        .into_iter()
        .map(|(method, path)| (method, normalized(&path)))
        .collect();
    let documented = documented(&document());
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes docs/openapi.json does not describe: {undocumented:?}"
    );
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    let missing: Vec<_> = whole.iter().filter(|p| !paths.contains(p)).collect();
    assert!(
        missing.is_empty(),
        "paths docs/openapi.json does not describe: {missing:?}"
    );
    let unrouted: Vec<_> = documented
        .iter()
        .filter(|(method, path)| {
            !routes.contains(&(method.clone(), path.clone()))
                && !whole.contains(path)
                && !SERVED_ELSEWHERE.contains(&path.as_str())
        })
        .collect();
    assert!(
        unrouted.is_empty(),
        "documented, but no router names them: {unrouted:?}"
    );
}

#[test]
fn the_documented_schemes_are_those_hookgate_signs_with() {
    let doc = document();
    let documented: Vec<&str> = doc["components"]["schemas"]["SchemeName"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // `hmac` needs its options, which a name alone cannot give.
    let named: Vec<&str> = hookgate::schemes::SCHEME_NAMES
        .iter()
        .copied()
        .filter(|n| *n != "hmac")
        .collect();
    assert_eq!(documented, named, "SCHEMES in docs/openapi/build.py");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_port_serves_the_document_and_answers_every_operation() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints(&support::acme_endpoint(&app, "/hooks", ""))
        .outbound("  allow_private_destinations: [127.0.0.0/8]\n")
        .admin(&format!("portal: {{ signing_key: {SIGNING_KEY} }}"))
        .start()
        .await;
    let client = reqwest::Client::new();
    // Served without a token, byte for byte as checked in.
    let served = client
        .get(gateway.admin_url("/admin/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let served = served.bytes().await.unwrap();
    assert!(served == std::fs::read(root().join("docs/openapi.json")).unwrap());

    let (status, link) = gateway
        .admin_json(
            reqwest::Method::POST,
            "/admin/tenants/acme/portal",
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let portal_token = link["token"].as_str().unwrap().to_string();
    let doc = document();
    let mut answered = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let outbound = item["servers"][0]["description"] == "outbound.listen";
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let concrete = path.replace("{endpoint}", "acme");
            let concrete = concrete
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let url = match outbound {
                true => format!("http://{}{concrete}", gateway.outbound),
                false => gateway.admin_url(&concrete),
            };
            let mut request = client
                .request(method.to_uppercase().parse().unwrap(), url)
                .timeout(Duration::from_secs(10));
            if concrete.starts_with("/portal/api/") {
                request = request.bearer_auth(&portal_token);
            } else if concrete.starts_with("/admin/") {
                request = request.bearer_auth(ADMIN_TOKEN);
            }
            if ["post", "patch", "put"].contains(method) {
                request = request
                    .header("Content-Type", "application/json")
                    .body("{}");
            }
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            let code = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|b| b["error"].as_str().map(str::to_string));
            assert!(
                status != 405 && !(status == 404 && code.as_deref() == Some("not_found")),
                "{} {path}: no such route ({status} {body})",
                method.to_uppercase()
            );
            answered += 1;
        }
    }
    assert!(answered > 55, "{answered}");

    // A method a documented path does not take: 405, and `Allow` names those it takes.
    for (method, path, allow) in [
        ("PUT", "/admin/subscriptions/sub_x", "GET, PATCH, DELETE"),
        ("GET", "/admin/deliveries/replay", "POST"),
        ("DELETE", "/admin/openapi.json", "GET"),
        ("POST", "/admin/refusals", "GET"),
    ] {
        let answer = client
            .request(method.parse().unwrap(), gateway.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 405, "{method} {path}");
        assert_eq!(answer.headers()["allow"], allow, "{method} {path}");
    }
    let answer = client
        .put(gateway.admin_url("/portal/api/subscriptions"))
        .bearer_auth(&portal_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            answer.status().as_u16(),
            answer.headers()["allow"].to_str().unwrap()
        ),
        (405, "GET, POST")
    );
    // A query parameter without a value is refused, not taken for "any".
    let (status, refused) = gateway
        .admin(reqwest::Method::GET, "/admin/subscriptions?tenant=")
        .await;
    assert_eq!(
        (status, refused["error"].as_str(), refused["field"].as_str()),
        (400, Some("bad_request"), Some("tenant"))
    );
}
