//! OpenTelemetry traces against a real OTLP/HTTP collector (a Python server decoding with
//! the official `opentelemetry-proto`): spans of inbound webhooks and of outbound attempts
//! in the caller's trace, `traceparent` passed on, and a collector that is down or hangs
//! costing requests nothing.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    eventually, free_port, post, sign, stays, Gateway, GatewayBuilder, OtlpReceiver, TestApp,
};

const WITHIN: Duration = Duration::from_secs(15);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const ROUTE: &str = "    - name: rejento\n      path: /hooks/rejento\n      verify: { scheme: rejento, secrets: [s3cret] }\n      dedupe: { id: \"header:X-Rejento-Delivery-Id\", ttl: 1h }\n      rate_limit: { key: route, limit: 1000/s }\n";

fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

/// A gateway exporting to `collector` (a URL), sampling all, with the rejento route.
fn traced(app: &TestApp, collector: &str, extra: &str) -> GatewayBuilder {
    Gateway::builder(app.url())
        .routes(ROUTE)
        .section(&format!(
            "telemetry:\n  otlp: {{ endpoint: \"{collector}\", headers: {{ x-api-key: collector-key }}, timeout: 1s }}\n{extra}"
        ))
}

/// Waits until the collector has a span that `matches`; that span.
async fn span_where(
    collector: &OtlpReceiver,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let mut found = Value::Null;
    eventually(what, WITHIN, async || {
        match collector.spans().into_iter().find(|s| matches(s)) {
            Some(span) => {
                found = span;
                true
            }
            None => false,
        }
    })
    .await;
    found
}

fn event_names(span: &Value) -> Vec<&str> {
    span["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

/// Sends a signed Rejento webhook with `headers` added; the answer's status.
async fn send_webhook(
    gateway: &Gateway,
    id: &str,
    secret: &str,
    extra: &[(String, String)],
) -> u16 {
    // The id in the body too: Rejento's id is not signed, so equal bodies are replays.
    let body = format!(r#"{{"event":"candidate.created","id":"{id}"}}"#);
    let body = body.as_bytes();
    let mut headers = sign("rejento", secret, id, body, None);
    headers.extend(extra.iter().cloned());
    let url = gateway.url("/hooks/rejento");
    post(&reqwest::Client::new(), &url, &headers, body)
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbound_webhook_continues_the_senders_trace_and_the_app_sees_hookgates_span() {
    let dir = tempfile::tempdir().unwrap();
    let collector = OtlpReceiver::start(dir.path(), false);
    let app = TestApp::start().await;
    let gateway = traced(&app, &collector.url(), "")
        .env("OTEL_SERVICE_NAME", "edge-hooks")
        .env("HOOKGATE_POD_NAME", "shop-7f9c")
        .env("HOOKGATE_POD_NAMESPACE", "shop")
        .start()
        .await;

    let incoming = vec![
        ("traceparent".to_string(), traceparent(TRACE, PARENT)),
        ("tracestate".to_string(), "vendor=opaque".to_string()),
    ];
    assert_eq!(
        send_webhook(&gateway, "d-1", "s3cret", &incoming).await,
        200
    );
    app.wait_for(1).await;
    let received = &app.received()[0];
    let passed_on = received.header("traceparent").unwrap().to_string();
    let parts: Vec<&str> = passed_on.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE, "01"),
        "{passed_on}"
    );
    assert_ne!(
        parts[2], PARENT,
        "the app's parent is hookgate's span, not the sender's"
    );
    assert_eq!(received.header("tracestate"), Some("vendor=opaque"));

    let server = span_where(&collector, "the webhook's server span", |s| {
        s["kind"] == 2 && s["trace_id"] == TRACE
    })
    .await;
    assert_eq!(server["parent_span_id"], PARENT);
    assert_eq!(server["name"], "POST rejento");
    let attributes = &server["attributes"];
    assert_eq!(attributes["hookgate.route"], "rejento");
    assert_eq!(attributes["hookgate.outcome"], "forwarded");
    assert_eq!(attributes["hookgate.delivery_id"], "d-1");
    assert_eq!(attributes["http.response.status_code"], 200);
    assert_eq!(attributes["http.request.method"], "POST");
    assert_eq!(attributes["url.path"], "/hooks/rejento");
    assert_eq!(event_names(&server), ["verify", "dedupe", "rate_limit"]);
    let forward = span_where(&collector, "the forward's client span", |s| {
        s["kind"] == 3 && s["trace_id"] == TRACE
    })
    .await;
    assert_eq!(forward["name"], "forward");
    assert_eq!(forward["parent_span_id"], server["span_id"]);
    assert_eq!(
        forward["span_id"], parts[2],
        "the app's parent is the forward span"
    );
    assert_eq!(forward["attributes"]["server.port"], app.addr.port());
    assert!(server["start"].as_u64() <= forward["start"].as_u64());
    assert!(forward["end"].as_u64() <= server["end"].as_u64());

    // What a collector needs to know the source, and the export's own form.
    assert_eq!(server["resource"]["service.name"], "edge-hooks");
    assert_eq!(server["resource"]["k8s.pod.name"], "shop-7f9c");
    assert_eq!(server["resource"]["k8s.namespace.name"], "shop");
    assert_eq!(server["scope"], "hookgate");
    assert_eq!(server["path"], "/v1/traces");
    assert_eq!(server["content_type"], "application/x-protobuf");
    assert_eq!(server["api_key"], "collector-key");

    // A forged webhook without a traceparent: a trace of its own, the refusal recorded.
    assert_eq!(send_webhook(&gateway, "d-2", "wrong", &[]).await, 401);
    let refused = span_where(&collector, "the refusal's span", |s| {
        s["attributes"]["hookgate.outcome"] == "invalid_signature"
    })
    .await;
    assert_ne!(refused["trace_id"], TRACE);
    assert_eq!(refused["parent_span_id"], "");
    assert_eq!(refused["attributes"]["http.response.status_code"], 401);
    assert_eq!(
        app.received().len(),
        1,
        "the forged one never reached the app"
    );

    // A duplicate is recorded as one.
    assert_eq!(send_webhook(&gateway, "d-1", "s3cret", &[]).await, 200);
    let duplicate = span_where(&collector, "the duplicate's span", |s| {
        s["attributes"]["hookgate.outcome"] == "duplicate"
    })
    .await;
    assert_eq!(
        duplicate["events"][1]["attributes"]["hookgate.dedupe"],
        "duplicate"
    );
    let mut metrics = String::new();
    eventually("exported spans counted", WITHIN, async || {
        metrics = gateway.metrics().await;
        metrics.contains("hookgate_trace_spans_total{outcome=\"exported\"}")
    })
    .await;
    assert!(!metrics.contains("outcome=\"export_failed\""), "{metrics}");
    // The secret headers never reach a span.
    let everything = serde_json::to_string(&collector.spans()).unwrap();
    assert!(!everything.contains("s3cret") && !everything.contains("X-Rejento-Signature"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sampling_follows_the_callers_decision_and_otherwise_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let collector = OtlpReceiver::start(dir.path(), false);
    let app = TestApp::start().await;
    let gateway = traced(&app, &collector.url(), "  sampling: 0.0\n")
        .start()
        .await;

    // No caller context, ratio 0: nothing recorded, but the trace goes on unsampled.
    assert_eq!(send_webhook(&gateway, "s-1", "s3cret", &[]).await, 200);
    app.wait_for(1).await;
    let passed_on = app.received()[0].header("traceparent").unwrap().to_string();
    assert!(
        passed_on.starts_with("00-") && passed_on.ends_with("-00"),
        "{passed_on}"
    );
    // A caller that sampled its trace: recorded whatever the ratio.
    let sampled = vec![("traceparent".to_string(), traceparent(TRACE, PARENT))];
    assert_eq!(send_webhook(&gateway, "s-2", "s3cret", &sampled).await, 200);
    span_where(&collector, "the sampled trace's span", |s| {
        s["trace_id"] == TRACE
    })
    .await;
    // A malformed traceparent starts a new (here unsampled) trace instead.
    let malformed = vec![("traceparent".to_string(), format!("00-{TRACE}-zz-01"))];
    assert_eq!(
        send_webhook(&gateway, "s-3", "s3cret", &malformed).await,
        200
    );
    app.wait_for(3).await;
    let passed_on = app.received()[2].header("traceparent").unwrap().to_string();
    assert!(!passed_on.contains(TRACE), "{passed_on}");
    // Longer than the exporter's batching: an unsampled span would have been posted.
    stays(
        "only the sampled trace is recorded",
        Duration::from_secs(1),
        async || collector.spans().iter().all(|s| s["trace_id"] == TRACE),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_attempts_are_spans_in_the_apps_trace_and_retries_stay_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let collector = OtlpReceiver::start(dir.path(), false);
    let receiver = TestApp::start().await;
    // The first attempt's connection is closed unanswered; the retry gets a 200.
    receiver.close_connections(1);
    let endpoints = format!(
        "    - {{ name: acme, url: \"{url}/hooks\", sign: {{ scheme: rejento, secret: acme-secret }}, retry: {{ schedule: [1s], max_attempts: 5, timeout: 2s }} }}\n    - {{ name: private, url: \"{url}/private\", sign: {{ scheme: rejento, secret: p }}, trace_propagation: false }}\n",
        url = receiver.url()
    );
    let subscriptions = format!(
        "  allow_private_destinations: [127.0.0.0/8]\n  subscriptions:\n    - {{ id: orders, url: \"{}/orders\", event_types: [order.*], sign: {{ scheme: rejento, secret: sub-secret }} }}\n",
        receiver.url()
    );
    let app = TestApp::start().await;
    let gateway = traced(&app, &collector.url(), "")
        .endpoints(&endpoints)
        .outbound(&subscriptions)
        .env("HOOKGATE_RETRY_TIME_SCALE", "0.01")
        .env("HOOKGATE_LOG_FORMAT", "json")
        .start()
        .await;
    let client = reqwest::Client::new();
    // A message to endpoint `name`, sent in the app's trace.
    let send_traced = async |name: &str| {
        let url = format!("http://{}/{name}", gateway.outbound);
        let headers = [("traceparent".to_string(), traceparent(TRACE, PARENT))];
        post(&client, &url, &headers, b"{}").await
    };
    let sent = send_traced("acme").await;
    assert_eq!(sent.status(), 202);
    let id = sent.json::<Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    receiver.wait_for(1).await;
    assert_eq!(receiver.closed(), 1);

    let accepted = span_where(&collector, "the accepting span", |s| {
        s["kind"] == 2 && s["trace_id"] == TRACE
    })
    .await;
    assert_eq!(accepted["parent_span_id"], PARENT);
    assert_eq!(accepted["name"], "POST /{endpoint}");
    assert_eq!(accepted["attributes"]["hookgate.delivery_id"], id.as_str());
    assert_eq!(accepted["attributes"]["http.response.status_code"], 202);
    let retried = span_where(&collector, "the retry's span", |s| {
        s["kind"] == 3 && s["attributes"]["http.request.resend_count"] == 1
    })
    .await;
    let failed = span_where(&collector, "the failed attempt's span", |s| {
        s["kind"] == 3 && s["attributes"]["http.request.resend_count"] == 0
    })
    .await;
    for span in [&failed, &retried] {
        assert_eq!(span["trace_id"], TRACE);
        assert_eq!(span["parent_span_id"], accepted["span_id"]);
        assert_eq!(span["attributes"]["hookgate.delivery_id"], id.as_str());
        assert_eq!(span["attributes"]["hookgate.endpoint"], "acme");
        assert_eq!(span["attributes"]["server.port"], receiver.addr.port());
    }
    assert_eq!(
        failed["status"], 2,
        "an attempt without an answer is an error span"
    );
    assert_eq!(failed["attributes"]["error.type"], "no_answer");
    assert_eq!(retried["status"], 0);
    assert_eq!(retried["attributes"]["http.response.status_code"], 200);
    // The receiver was told the attempt's own span.
    assert_eq!(
        receiver.received()[0].header("traceparent").unwrap(),
        traceparent(TRACE, retried["span_id"].as_str().unwrap())
    );
    // The attempt's JSON log line names its trace and span.
    let log = gateway.log();
    let span_id = retried["span_id"].as_str().unwrap();
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "delivery attempt" && l["span_id"] == span_id)
        .unwrap_or_else(|| panic!("no attempt line with the span id:\n{log}"));
    assert_eq!(line["trace_id"], TRACE);
    assert_eq!(line["delivery_id"], id.as_str());

    // trace_propagation: false: the receiver learns nothing of the sender's trace.
    assert_eq!(send_traced("private").await.status(), 202);
    receiver.wait_for(2).await;
    assert_eq!(receiver.received()[1].header("traceparent"), None);

    // An event's fan-out: the publish span, and the subscription's attempt under it.
    let (status, _) = gateway
        .publish(
            &[
                ("Hookgate-Event-Type", "order.created"),
                ("traceparent", &traceparent(TRACE, "1111111111111111")),
            ],
            "{}",
        )
        .await;
    assert_eq!(status, 202);
    let publish = span_where(&collector, "the publish span", |s| {
        s["name"] == "POST /events"
    })
    .await;
    assert_eq!(publish["parent_span_id"], "1111111111111111");
    assert_eq!(publish["events"][0]["name"], "fanout");
    assert_eq!(
        publish["events"][0]["attributes"]["hookgate.subscriptions"],
        1
    );
    let delivery = span_where(&collector, "the subscription's attempt", |s| {
        s["attributes"]["hookgate.subscription"] == "cfg_orders"
    })
    .await;
    assert_eq!(delivery["parent_span_id"], publish["span_id"]);
    assert_eq!(
        delivery["attributes"]["hookgate.event_type"],
        "order.created"
    );
}

/// Inbound webhooks through a gateway exporting to `collector`: every answer is 200 and
/// the slowest took less than `bound`.
async fn requests_are_unaffected(collector: &str, bound: Duration) -> Gateway {
    let app = TestApp::start().await;
    let gateway = traced(&app, collector, "").start().await;
    let mut slowest = Duration::ZERO;
    for i in 0..300 {
        let started = Instant::now();
        assert_eq!(
            send_webhook(&gateway, &format!("c-{i}"), "s3cret", &[]).await,
            200
        );
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < bound, "the slowest request took {slowest:?}");
    gateway
}

async fn export_fails(gateway: &Gateway) {
    eventually("a failed export", WITHIN, async || {
        let metrics = gateway.metrics().await;
        metrics.contains("hookgate_trace_spans_total{outcome=\"export_failed\"}")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_or_hangs_changes_no_answer_and_adds_no_latency() {
    let bound = Duration::from_millis(250);
    // Down: nothing listens there.
    let down = format!("http://127.0.0.1:{}", free_port());
    let gateway = requests_are_unaffected(&down, bound).await;
    export_fails(&gateway).await;
    assert!(gateway.log().contains("OTLP export failed"));

    // Hangs: accepts, reads, never answers in time (timeout 1 s).
    let dir = tempfile::tempdir().unwrap();
    let hanging = OtlpReceiver::start(dir.path(), true);
    let gateway = requests_are_unaffected(&hanging.url(), bound).await;
    export_fails(&gateway).await;
    assert!(
        !gateway.log().contains("collector-key"),
        "the export's credentials stay out of the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_webhooks_attempts_continue_the_senders_trace() {
    let dir = tempfile::tempdir().unwrap();
    let collector = OtlpReceiver::start(dir.path(), false);
    let app = TestApp::start().await;
    app.respond_with(503, Duration::ZERO);
    let route = "    - { name: queued, path: /hooks/queued, verify: none, deliver: queue, queue: { retry: { schedule: [50ms], max_attempts: 5 } } }\n";
    let gateway = Gateway::builder(app.url())
        .routes(route)
        .section(&format!(
            "telemetry:\n  otlp: {{ endpoint: \"{}\", timeout: 1s }}\n",
            collector.url()
        ))
        .start()
        .await;
    let answer = reqwest::Client::new()
        .post(gateway.url("/hooks/queued"))
        .header("traceparent", traceparent(TRACE, PARENT))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    app.wait_for(1).await;
    app.respond_with(200, Duration::ZERO);
    app.wait_for(2).await;
    let server = span_where(&collector, "the webhook's server span", |s| {
        s["kind"] == 2 && s["trace_id"] == TRACE
    })
    .await;
    assert_eq!(server["parent_span_id"], PARENT);
    assert_eq!(server["attributes"]["hookgate.outcome"], "queued");
    // Both attempts: client spans in the sender's trace, children of the accepting span.
    let mut attempts = Vec::new();
    eventually("two attempt spans", WITHIN, async || {
        attempts = collector
            .spans()
            .into_iter()
            .filter(|s| s["kind"] == 3 && s["trace_id"] == TRACE)
            .collect();
        attempts.len() == 2
    })
    .await;
    for attempt in &attempts {
        assert_eq!(attempt["parent_span_id"], server["span_id"]);
        assert_eq!(attempt["attributes"]["hookgate.endpoint"], "route:queued");
    }
    // The app's traceparent names the attempt's span, in the same trace.
    for (request, _) in app.received().iter().zip(0..) {
        let parts: Vec<String> = request
            .header("traceparent")
            .unwrap()
            .split('-')
            .map(str::to_string)
            .collect();
        assert_eq!(parts[1], TRACE);
        assert!(attempts.iter().any(|a| a["span_id"] == parts[2].as_str()));
    }
}
