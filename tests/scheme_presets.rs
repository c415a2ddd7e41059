//! Every provider preset (src/schemes/presets.rs) against a request signed independently
//! from the provider's documented recipe (tests/data/vectors.json `presets`, made with
//! Python's hmac by tests/data/preset_vectors.py): hookgate verifies it, finds its delivery
//! id, refuses near misses, and signs the same headers. `hookgate schemes show` gives a
//! route `hookgate check` accepts, and the docs' provider table lists every preset.

use std::collections::BTreeMap;

use hookgate::schemes::presets::{find, Recipe, SecretFormat, PRESETS};
use hookgate::schemes::{Message, Request, SchemeSpec, Verifier, VerifyError};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// Presets whose vectors are the providers' own, in the sections tests/scheme_vectors.rs checks.
const PUBLISHED_ELSEWHERE: [&str; 5] = ["standard-webhooks", "svix", "stripe", "paddle", "twilio"];

fn vectors() -> Value {
    let all: Value = serde_json::from_str(include_str!("data/vectors.json")).unwrap();
    all["presets"].clone()
}

struct Vector {
    secret: String,
    headers: BTreeMap<String, String>,
    body: String,
    url: Option<String>,
    timestamp: u64,
    id: String,
}

fn vector(all: &Value, name: &str) -> Vector {
    let v = &all[name];
    assert!(
        v.is_object(),
        "{name}: no vector in tests/data/vectors.json (presets)"
    );
    Vector {
        secret: v["secret"].as_str().unwrap().to_string(),
        headers: serde_json::from_value(v["headers"].clone()).unwrap(),
        body: v["body"]
            .as_str()
            .or(all["body"].as_str())
            .unwrap()
            .to_string(),
        url: v["url"].as_str().map(str::to_string),
        timestamp: all["timestamp"].as_u64().unwrap(),
        id: all["id"].as_str().unwrap().to_string(),
    }
}

fn header_map(headers: &BTreeMap<String, String>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn verify(
    verifier: &Verifier,
    v: &Vector,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, VerifyError> {
    verifier
        .verify(
            &Request {
                method: "POST",
                url: v.url.as_deref(),
                headers,
                body,
            },
            v.timestamp + 1,
        )
        .map(|verified| verified.id)
}

fn verifier(name: &str, secret: &str) -> Verifier {
    Verifier::new(&SchemeSpec::Named(name.into()), &[secret], None)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_preset_verifies_its_providers_recipe_and_refuses_near_misses() {
    let all = vectors();
    let mut checked = 0;
    for preset in PRESETS
        .iter()
        .filter(|p| !PUBLISHED_ELSEWHERE.contains(&p.name))
    {
        let name = preset.name;
        let v = vector(&all, name);
        let headers = header_map(&v.headers);
        let good = verifier(name, &v.secret);
        let id = verify(&good, &v, &headers, v.body.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: the provider's request is refused: {e}"));
        match preset.dedupe_id() {
            Some(header) => assert_eq!(
                id.as_deref(),
                Some(v.id.as_str()),
                "{name}: the delivery id from {header}"
            ),
            None => assert_eq!(id, None, "{name}"),
        }
        // A near miss: one byte of the body changed (a static token does not sign it).
        let mut body = v.body.clone().into_bytes();
        let last = body.len() - 2;
        body[last] ^= 1;
        assert_eq!(
            verify(&good, &v, &headers, &body).is_err(),
            preset.signs_body(),
            "{name}: a changed body"
        );
        // Another secret.
        let other = match preset.secret_format() {
            SecretFormat::Text => format!("{}x", v.secret),
            format => secret_for(format, "b3RoZXIgc2VjcmV0IGJ5dGVz"),
        };
        assert!(
            verify(&verifier(name, &other), &v, &headers, v.body.as_bytes()).is_err(),
            "{name}: another secret passed"
        );
        checked += 1;
    }
    assert!(
        checked + PUBLISHED_ELSEWHERE.len() == PRESETS.len() && PRESETS.len() >= 75,
        "{checked}"
    );
}

#[test]
fn sign_makes_the_headers_the_provider_sends() {
    let all = vectors();
    for preset in PRESETS
        .iter()
        .filter(|p| !PUBLISHED_ELSEWHERE.contains(&p.name))
    {
        let v = vector(&all, preset.name);
        let signing = all[preset.name]["signing_secret"]
            .as_str()
            .unwrap_or(&v.secret);
        let signed = verifier(preset.name, signing)
            .sign(&Message {
                id: &v.id,
                timestamp: v.timestamp,
                method: "POST",
                url: v.url.as_deref(),
                body: v.body.as_bytes(),
            })
            .unwrap();
        // `signed`: where the provider writes what hookgate writes otherwise (a time's
        // precision, a space, a second signature).
        let signed_form = &all[preset.name]["signed"];
        let wanted: BTreeMap<String, String> = match signed_form.is_object() {
            true => serde_json::from_value(signed_form.clone()).unwrap(),
            false => v.headers.clone(),
        };
        let expected: BTreeMap<String, String> = wanted
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        // ECDSA signatures are randomized: the provider's public key must verify hookgate's.
        if preset.secret_format() == SecretFormat::EcdsaPublicKey {
            let pairs: BTreeMap<String, String> = signed.into_iter().collect();
            verify(
                &verifier(preset.name, &v.secret),
                &v,
                &header_map(&pairs),
                v.body.as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", preset.name));
            continue;
        }
        for (header, value) in signed {
            let header = header.to_ascii_lowercase();
            // Standard Webhooks' timestamp and id are the message's; any other header is the vector's.
            if let Some(want) = expected.get(&header) {
                assert_eq!(&value, want, "{}: {header}", preset.name);
            }
        }
    }
}

#[test]
fn aliases_name_presets_and_templates_parse() {
    for preset in PRESETS {
        if let Recipe::Alias(target) = preset.recipe {
            let target =
                find(target).unwrap_or_else(|| panic!("{}: no preset {target}", preset.name));
            assert!(
                !matches!(target.recipe, Recipe::Alias(_)),
                "{}: an alias of an alias",
                preset.name
            );
        }
        // Building it parses the template (a panic would be a bad row).
        verifier(preset.name, &secret_for(preset.secret_format(), "c2VjcmV0"));
        assert!(
            preset.docs.starts_with("https://") || preset.docs.starts_with("shared/seeds"),
            "{}",
            preset.name
        );
    }
    let mut names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), PRESETS.len(), "a preset name twice");
}

#[test]
fn schemes_show_prints_a_route_check_accepts_for_every_preset() {
    let dir = tempfile::tempdir().unwrap();
    let mut routes = String::new();
    for preset in PRESETS {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["schemes", "show", preset.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", preset.name);
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            routes.push_str("    ");
            routes.push_str(line);
            routes.push('\n');
        }
    }
    let config = dir.path().join("hookgate.yaml");
    std::fs::write(
        &config,
        format!("inbound:\n  listen: \"127.0.0.1:0\"\n  upstream: http://127.0.0.1:9\n  routes:\n{routes}"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "-c"])
        .arg(&config)
        .env_clear()
        .envs(PRESETS.iter().map(|p| {
            (
                format!("{}_SECRET", p.name.to_uppercase().replace('-', "_")),
                secret_for(p.secret_format(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            )
        }))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&config).unwrap()
    );
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["schemes", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    for preset in PRESETS {
        assert!(
            list.lines()
                .any(|l| l.starts_with(&format!("{} ", preset.name))),
            "{}",
            preset.name
        );
    }
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["schemes", "show", "no-such-provider"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(64));
}

/// A secret of the shape a preset takes, from base64 `key`.
fn secret_for(format: SecretFormat, key: &str) -> String {
    match format {
        SecretFormat::Text => format!("text-{key}"),
        SecretFormat::Base64 => key.to_string(),
        SecretFormat::Hex => "00112233".to_string(),
        SecretFormat::Whsec => format!("whsec_{key}"),
        SecretFormat::UserPassword => format!("user:{key}"),
        SecretFormat::Ed25519PublicKey => hookgate::schemes::ed25519::generate(),
        SecretFormat::EcdsaPublicKey => OTHER_P256_PUBLIC.to_string(),
    }
}

/// Another P-256 public key (SPKI DER, base64) than the vector's.
const OTHER_P256_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPteijsZI7c5dW34lL2sqr7tEg1EUoks8qo9xD2SZO8JXEaNM3JIpCAtjnwmXf+t8qR7M4WSb/qithccrIGrefg==";

/// The providers page's table, as the preset table says it
/// (`HOOKGATE_BLESS_DOCS=1 cargo test --test scheme_presets` rewrites it).
#[test]
fn the_providers_page_is_the_preset_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/providers.md");
    let page = std::fs::read_to_string(path).unwrap();
    let header =
        "| scheme | provider | signature | delivery id | recipe |\n|---|---|---|---|---|\n";
    let rows: String = PRESETS
        .iter()
        .map(|p| {
            let id = p.dedupe_id().map(|h| format!("`{h}`")).unwrap_or_default();
            let recipe = match p.docs.starts_with("https://") {
                true => format!("[docs]({})", p.docs),
                false => p.docs.to_string(),
            };
            format!(
                "| `{}` | {} | `{}` | {id} | {recipe} |\n",
                p.name,
                p.provider,
                p.signature()
            )
        })
        .collect();
    let start = page.find(header).expect("the providers page has its table") + header.len();
    let end = page[start..]
        .find("\n\n")
        .map_or(page.len(), |n| start + n + 1);
    if std::env::var_os("HOOKGATE_BLESS_DOCS").is_some() {
        std::fs::write(path, format!("{}{rows}{}", &page[..start], &page[end..])).unwrap();
        return;
    }
    assert_eq!(
        &page[start..end],
        rows,
        "docs/src/providers.md: HOOKGATE_BLESS_DOCS=1 rewrites it"
    );
}
