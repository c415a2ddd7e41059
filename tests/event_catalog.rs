//! The event-type catalog (`outbound.event_types`): listed by the admin API, and with
//! `outbound.events.validate` a published payload must pass its type's JSON Schema.

mod support;

use std::process::Command;

use support::{acme_endpoint, Gateway, TestApp};

const CATALOG: &str = r#"  events: { validate: true }
  event_types:
    - name: candidate.created
      description: A candidate applied.
      schema:
        type: object
        required: [data]
        properties:
          data:
            type: object
            required: [id]
            properties: { id: { type: string } }
      example: { data: { id: cand_1 } }
    - { name: candidate.archived, description: Old., deprecated: true }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_is_listed_and_payloads_are_checked_against_their_schema() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints(&acme_endpoint(&app, "/hooks", ""))
        .outbound(CATALOG)
        .start()
        .await;
    let (status, listed) = gateway
        .admin(reqwest::Method::GET, "/admin/event-types")
        .await;
    assert_eq!(status, 200, "{listed}");
    let types = listed["event_types"].as_array().unwrap();
    assert_eq!(types.len(), 2);
    assert_eq!(types[0]["name"], "candidate.created");
    assert_eq!(types[0]["schema"]["required"][0], "data");
    assert_eq!(types[0]["example"]["data"]["id"], "cand_1");
    assert_eq!(types[1]["deprecated"], true);

    let typed = [("Hookgate-Event-Type", "candidate.created")];
    let (status, answer) = gateway.publish(&typed, r#"{"data":{"id":"c1"}}"#).await;
    assert_eq!(status, 202, "{answer}");
    // A wrong type deep in the payload: refused, naming the place and the keyword.
    let (status, answer) = gateway.publish(&typed, r#"{"data":{"id":7}}"#).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"], "invalid_payload");
    assert_eq!(answer["field"], "/data/id");
    assert!(
        answer["message"].as_str().unwrap().contains("(type)"),
        "{answer}"
    );
    let (status, answer) = gateway.publish(&typed, r#"{"other":1}"#).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("")));
    assert!(
        answer["message"].as_str().unwrap().contains("(required)"),
        "{answer}"
    );
    // A type without a schema, or not in the catalog, passes.
    let untyped = [("Hookgate-Event-Type", "candidate.archived")];
    assert_eq!(gateway.publish(&untyped, r#"{"x":1}"#).await.0, 202);
    let unknown = [("Hookgate-Event-Type", "job.created")];
    assert_eq!(gateway.publish(&unknown, r#"{"x":1}"#).await.0, 202);
}

/// `hookgate check` on an outbound section holding `event_types`; what it printed.
fn check(event_types: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(
        &file,
        format!("outbound:\n  listen: 127.0.0.1:0\n  event_types:\n{event_types}"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "-c", file.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[test]
fn check_refuses_a_bad_schema_or_example_with_its_position() {
    let (ok, said) = check("    - name: a.b\n      schema: { type: 12 }\n");
    assert!(!ok);
    assert!(
        said.contains(
            "hookgate.yaml:5:15: outbound.event_types[0].schema: not a valid JSON Schema"
        ),
        "{said}"
    );
    let (ok, said) = check(
        "    - name: a.b\n      schema: { type: object, required: [id] }\n      example: { other: 1 }\n",
    );
    assert!(!ok);
    assert!(
        said.contains("outbound.event_types[0].example: does not match the schema"),
        "{said}"
    );
    let (ok, said) = check("    - { name: a.b }\n    - { name: a.b }\n");
    assert!(!ok && said.contains("duplicate event type"), "{said}");
}

#[test]
fn a_schema_may_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, r#"{"type": "object", "required": ["id"]}"#).unwrap();
    let (ok, said) = check(&format!(
        "    - name: a.b\n      schema: \"file:{}\"\n      example: {{ id: x }}\n",
        schema.display()
    ));
    assert!(ok, "{said}");
    let (ok, said) = check("    - name: a.b\n      schema: \"file:/nonexistent/schema.json\"\n");
    assert!(
        !ok && said.contains("cannot read /nonexistent/schema.json"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_validate_a_subscription_must_name_types_of_the_catalog() {
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .endpoints(&acme_endpoint(&app, "/hooks", ""))
        .outbound(CATALOG)
        .outbound("  allow_private_destinations: [127.0.0.0/8]\n")
        .start()
        .await;
    let create = |types: serde_json::Value| {
        let url = format!("{}/sub", app.url());
        let gateway = &gateway;
        async move {
            gateway
                .admin_json(
                    reqwest::Method::POST,
                    "/admin/subscriptions",
                    &serde_json::json!({ "url": url, "event_types": types }),
                )
                .await
        }
    };
    let (status, answer) = create(serde_json::json!(["job.created"])).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"], "unknown_event_type");
    assert_eq!(answer["field"], "event_types");
    for known in [
        serde_json::json!(["candidate.created"]),
        serde_json::json!(["candidate.*"]),
        serde_json::json!(["*"]),
    ] {
        let (status, answer) = create(known).await;
        assert_eq!(status, 201, "{answer}");
    }
    // A change to an unknown type is refused the same way.
    let (_, created) = create(serde_json::json!(["candidate.created"])).await;
    let id = created["id"].as_str().unwrap();
    let (status, answer) = gateway
        .admin_json(
            reqwest::Method::PATCH,
            &format!("/admin/subscriptions/{id}"),
            &serde_json::json!({ "event_types": ["jobs.*"] }),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("unknown_event_type"))
    );
}

#[test]
fn with_validate_subscriptions_in_the_file_must_name_types_of_the_catalog() {
    let catalog = "    - { name: order.paid }\n  events: { validate: true }\n  subscriptions:\n";
    let (ok, said) = check(&format!(
        "{catalog}    - {{ id: a, url: \"https://a.example/h\", event_types: [order.*, order.paid], sign: {{ scheme: standard-webhooks, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }} }}\n"
    ));
    assert!(ok, "{said}");
    let (ok, said) = check(&format!(
        "{catalog}    - {{ id: a, url: \"https://a.example/h\", event_types: [order.paid, job.created], sign: {{ scheme: standard-webhooks, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }} }}\n"
    ));
    assert!(!ok, "{said}");
    assert!(
        said.contains("outbound.subscriptions[0].event_types: \"job.created\" names no type"),
        "{said}"
    );
}
