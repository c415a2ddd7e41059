//! The admin API from the command line: `hookgate deliveries ...`, `hookgate endpoints ...`
//! and `hookgate subscriptions ...` call the running hookgate's admin port and print what
//! it says.

use std::process::ExitCode;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use serde_json::Value;

use crate::cli::{
    AdminArgs, DeliveriesCommand, DeliveryFilterArgs, EndpointsCommand, JobsCommand, PortalCommand,
    RoutesCommand, SubscriptionFields, SubscriptionsCommand,
};
use crate::http_io::exchange;

pub mod store;

/// Calls `method path` on the admin port (with a JSON body); the status and the JSON answer.
async fn call(
    args: &AdminArgs,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let base = args.admin.trim_end_matches('/');
    let Some(token) = &args.token else {
        return Err(
            "no admin token: set HOOKGATE_ADMIN_TOKEN (or pass --token) to the running hookgate's admin.token"
                .into(),
        );
    };
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("--admin must be an http:// URL, found {base:?}"))?;
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(std::time::Duration::from_secs(5));
    peer.options.read_timeout = Some(std::time::Duration::from_secs(30));
    let connector = Connector::new(None);
    let (mut http, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| {
            let why = match e.etype() {
                pingora::ErrorType::ConnectRefused => "connection refused".to_string(),
                pingora::ErrorType::ConnectTimedout => "no answer within 5s".to_string(),
                other => other.as_str().to_string(),
            };
            format!(
                "cannot reach the admin port at {base} ({why}): is hookgate running, with admin.listen there? (--admin or HOOKGATE_ADMIN_URL)"
            )
        })?;
    let mut request =
        RequestHeader::build(method, path.as_bytes(), None).map_err(|e| e.to_string())?;
    let set = |r: &mut RequestHeader, k: &'static str, v: String| {
        r.insert_header(k, v).map_err(|e| e.to_string())
    };
    set(&mut request, "Host", authority.to_string())?;
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    set(&mut request, "Content-Length", body.len().to_string())?;
    if !body.is_empty() {
        set(&mut request, "Content-Type", "application/json".into())?;
    }
    set(&mut request, "Authorization", format!("Bearer {token}"))?;
    exchange(&mut http, request, body).await?;
    let status = http.response_header().map_or(0, |h| h.status.as_u16());
    let mut body = Vec::new();
    while let Some(chunk) = http.read_response_body().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
    }
    let json = serde_json::from_slice(&body)
        .map_err(|e| format!("the admin port answered {status} with non-JSON: {e}"))?;
    Ok((status, json))
}

fn print_deliveries(json: &Value) {
    let rows = json["deliveries"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<30} {:<16} {:<8} {:>8}  LAST",
        "ID", "ENDPOINT", "STATE", "ATTEMPTS"
    );
    for d in rows {
        let last = d["attempts"]
            .as_array()
            .and_then(|a| a.last())
            .map_or(String::from("-"), |a| {
                match (a["status"].as_u64(), a["error"].as_str()) {
                    (Some(status), _) => status.to_string(),
                    (None, Some(error)) => error.to_string(),
                    _ => "-".into(),
                }
            });
        println!(
            "{:<30} {:<16} {:<8} {:>8}  {last}",
            d["id"].as_str().unwrap_or(""),
            d["destination"]["name"]
                .as_str()
                .or(d["endpoint"].as_str())
                .unwrap_or(""),
            d["state"].as_str().unwrap_or(""),
            d["attempts"].as_array().map_or(0, Vec::len),
        );
    }
    if let Some(next) = json["next"].as_str() {
        println!("more: --after {next}");
    }
}

/// Unix milliseconds as an RFC 3339 time (UTC, to the second).
fn when(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// One delivery for people: where it goes, its state, its payload and every attempt.
fn print_delivery(d: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    println!("delivery     {}", text(&d["id"]));
    println!("state        {}", text(&d["state"]));
    let target = match (&d["event"], &d["destination"]) {
        (event, _) if event.is_object() => format!(
            "subscription {} ({}, tenant {})",
            text(&event["subscription"]),
            text(&event["event_type"]),
            text(&event["tenant"])
        ),
        (_, destination) => text(&destination["name"]),
    };
    println!("to           {target}");
    if let Some(url) = d["destination"]["url"].as_str() {
        println!("url          {url}");
    }
    println!("accepted     {}", when(&d["created_ms"]));
    match d["state"].as_str() {
        Some("pending") => println!("next attempt {}", when(&d["due_ms"])),
        Some("delivered") => println!("delivered    {}", when(&d["delivered_ms"])),
        _ => {}
    }
    if let Some(payload) = d["payload"].as_str() {
        let pretty = serde_json::from_str::<Value>(payload)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| payload.to_string());
        let cut = if d["payload_truncated"] == true {
            ", the first 16 KiB"
        } else {
            ""
        };
        println!("payload      {} bytes{cut}\n{pretty}", d["payload_bytes"]);
    }
    let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
    // The newest attempt that sent any: signatures and credentials arrive masked.
    let sent = attempts
        .iter()
        .rev()
        .filter_map(|a| a["request_headers"].as_array())
        .find(|h| !h.is_empty());
    if let Some(headers) = sent {
        println!("headers sent");
        for pair in headers {
            println!("  {}: {}", text(&pair[0]), text(&pair[1]));
        }
    }
    println!("attempts     {}", attempts.len());
    for a in attempts {
        let outcome = match (a["status"].as_u64(), a["error"].as_str()) {
            (Some(status), _) => status.to_string(),
            (None, Some(error)) => error.to_string(),
            _ => "-".into(),
        };
        let answer: String = text(&a["response"]).chars().take(60).collect();
        println!(
            "  {}  {outcome:<6} {:>6} ms  {}",
            when(&a["at_ms"]),
            a["latency_ms"],
            answer.replace('\n', " ")
        );
    }
}

fn print_endpoints(json: &Value) {
    println!(
        "{:<24} {:<13} {:<30} {:>6}  REASON",
        "ENDPOINT", "STATE", "LAST ATTEMPT (THIS PROCESS)", "STREAK"
    );
    for e in json["endpoints"].as_array().cloned().unwrap_or_default() {
        let state = if e["enabled"] == false {
            "disabled"
        } else if e["paused_until_ms"].is_u64() {
            "circuit open"
        } else {
            "enabled"
        };
        let last = &e["health"]["last_attempt"];
        let last = match (last["status"].as_u64(), last["error"].as_str()) {
            (Some(status), _) => format!("{status} {}", when(&last["at_ms"])),
            (None, Some(_)) => format!("error {}", when(&last["at_ms"])),
            _ => "-".to_string(),
        };
        println!(
            "{:<24} {:<13} {:<30} {:>6}  {}",
            e["name"].as_str().unwrap_or(""),
            state,
            last,
            e["health"]["failure_streak"].as_u64().unwrap_or(0),
            e["reason"].as_str().unwrap_or("")
        );
    }
}

fn finish(result: Result<(u16, Value), String>, json: bool, human: impl Fn(&Value)) -> ExitCode {
    match result {
        Ok((status, body)) if (200..300).contains(&status) => {
            if json {
                println!("{body}");
            } else {
                human(&body);
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!(
                "error: {status} {}: {}",
                body["error"].as_str().unwrap_or(""),
                body["message"].as_str().unwrap_or("")
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            out.append_pair(k, v);
        }
    }
    let q = out.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The query of a delivery filter, with `extra` pairs.
fn filter_query(filter: &DeliveryFilterArgs, extra: &[(&str, Option<String>)]) -> String {
    let mut pairs = vec![
        ("endpoint", filter.endpoint.clone()),
        ("route", filter.route.clone()),
        ("subscription", filter.subscription.clone()),
        ("tenant", filter.tenant.clone()),
        ("event_type", filter.event_type.clone()),
        ("since", filter.since.map(|t| t.to_string())),
        ("until", filter.until.map(|t| t.to_string())),
    ];
    pairs.extend_from_slice(extra);
    query(&pairs)
}

pub fn deliveries(args: &AdminArgs, command: &DeliveriesCommand) -> ExitCode {
    let all = |all: bool| ("all", all.then(|| "true".to_string()));
    let (method, path) = match command {
        DeliveriesCommand::List {
            filter,
            state,
            event_id,
            idempotency_key,
            limit,
            after,
        } => {
            let more = [
                ("state", state.clone()),
                ("event_id", event_id.clone()),
                ("idempotency_key", idempotency_key.clone()),
                ("limit", limit.map(|l| l.to_string())),
                ("after", after.clone()),
            ];
            (
                "GET",
                format!("/admin/deliveries{}", filter_query(filter, &more)),
            )
        }
        DeliveriesCommand::Show { id } => ("GET", format!("/admin/deliveries/{id}")),
        DeliveriesCommand::Retry { id } => ("POST", format!("/admin/deliveries/{id}/retry")),
        DeliveriesCommand::Replay {
            name,
            filter,
            all: every,
        } => {
            let filter = DeliveryFilterArgs {
                endpoint: name.clone().or(filter.endpoint.clone()),
                ..filter.clone()
            };
            (
                "POST",
                format!(
                    "/admin/deliveries/replay{}",
                    filter_query(&filter, &[all(*every)])
                ),
            )
        }
        DeliveriesCommand::Purge { filter, all: every } => (
            "DELETE",
            format!(
                "/admin/deliveries{}",
                filter_query(filter, &[("state", Some("dead".into())), all(*every)])
            ),
        ),
    };
    let result = runtime().block_on(call(args, method, &path, None));
    finish(result, args.json, |body| match command {
        DeliveriesCommand::List { .. } => print_deliveries(body),
        DeliveriesCommand::Show { .. } => print_delivery(body),
        _ => println!("{}", serde_json::to_string_pretty(body).unwrap_or_default()),
    })
}

pub fn reload(args: &AdminArgs, allow_weaker: bool) -> ExitCode {
    let path = format!(
        "/admin/reload{}",
        query(&[("allow_weaker", allow_weaker.then(|| "true".to_string()))])
    );
    let result = runtime().block_on(call(args, "POST", &path, None));
    if let (Ok((_, body)), false) = (&result, args.json) {
        // What a held or refused reload names, before the error line.
        for line in ["exposed", "problems"]
            .iter()
            .filter_map(|k| body[*k].as_array())
            .flatten()
        {
            eprintln!("  {}", line.as_str().unwrap_or_default());
        }
    }
    finish(result, args.json, |body| {
        let restart = body["needs_restart"].as_array().filter(|r| !r.is_empty());
        match (body["result"].as_str(), restart) {
            (Some("applied"), None) => {
                println!("reloaded (config {})", body["hash"].as_str().unwrap_or(""))
            }
            (Some("applied"), Some(keys)) => {
                println!(
                "reloaded (config {}); these keys keep their running values until a restart: {}",
                body["hash"].as_str().unwrap_or(""),
                keys.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
            )
            }
            _ => println!("{body}"),
        }
    })
}

pub fn endpoints(args: &AdminArgs, command: &EndpointsCommand) -> ExitCode {
    let (method, path) = match command {
        EndpointsCommand::List => ("GET", "/admin/endpoints".to_string()),
        EndpointsCommand::Enable { name } => ("POST", format!("/admin/endpoints/{name}/enable")),
        EndpointsCommand::Disable { name } => ("POST", format!("/admin/endpoints/{name}/disable")),
    };
    let result = runtime().block_on(call(args, method, &path, None));
    let list = matches!(command, EndpointsCommand::List);
    finish(result, args.json, |body| {
        if list {
            print_endpoints(body)
        } else {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default())
        }
    })
}

pub fn routes(args: &AdminArgs, command: &RoutesCommand) -> ExitCode {
    let (method, path) = match command {
        RoutesCommand::List => ("GET", "/admin/routes".to_string()),
        RoutesCommand::Pause { name } => ("POST", format!("/admin/routes/{name}/pause")),
        RoutesCommand::Resume { name } => ("POST", format!("/admin/routes/{name}/resume")),
    };
    let result = runtime().block_on(call(args, method, &path, None));
    finish(result, args.json, |body| match command {
        RoutesCommand::List => print_routes(body),
        RoutesCommand::Pause { name } => {
            println!("route {name}: paused (webhooks are stored, none sent)")
        }
        RoutesCommand::Resume { name } => println!("route {name}: resumed"),
    })
}

fn print_routes(json: &Value) {
    println!(
        "{:<24} {:<8} {:>8} {:>10} {:>6}  OLDEST WAITING",
        "ROUTE", "STATE", "PENDING", "SCHEDULED", "DEAD"
    );
    for r in json["routes"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<24} {:<8} {:>8} {:>10} {:>6}  {}",
            r["name"].as_str().unwrap_or(""),
            if r["paused"] == true {
                "paused"
            } else {
                "running"
            },
            r["pending"].as_u64().unwrap_or(0),
            r["scheduled"].as_u64().unwrap_or(0),
            r["dead"].as_u64().unwrap_or(0),
            if r["oldest_waiting_ms"].is_u64() {
                when(&r["oldest_waiting_ms"])
            } else {
                "-".to_string()
            }
        );
    }
}

fn print_subscriptions(json: &Value) {
    println!(
        "{:<32} {:<16} {:<8} {:<30} URL",
        "ID", "TENANT", "ENABLED", "EVENT TYPES"
    );
    for s in json["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let types: Vec<&str> = s["event_types"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{:<32} {:<16} {:<8} {:<30} {}",
            s["id"].as_str().unwrap_or(""),
            s["tenant"].as_str().unwrap_or("-"),
            s["enabled"].as_bool().unwrap_or(true),
            types.join(","),
            s["url"].as_str().unwrap_or("")
        );
    }
    if let Some(next) = json["next"].as_str() {
        println!("more: --after {next}");
    }
}

/// The JSON fields `create` and `update` send.
fn subscription_body(
    fields: &SubscriptionFields,
) -> Result<serde_json::Map<String, Value>, String> {
    let mut body = serde_json::Map::new();
    if let Some(url) = &fields.url {
        body.insert("url".into(), url.clone().into());
    }
    if !fields.event_types.is_empty() {
        body.insert("event_types".into(), fields.event_types.clone().into());
    }
    if !fields.filters.is_empty() {
        let mut filters = serde_json::Map::new();
        for filter in &fields.filters {
            let (name, value) = filter
                .split_once('=')
                .ok_or_else(|| format!("--filter {filter:?}: expected NAME=VALUE"))?;
            filters.insert(name.to_string(), value.into());
        }
        body.insert("filters".into(), filters.into());
    }
    if let Some(rate) = &fields.rate_limit {
        body.insert("rate_limit".into(), rate.clone().into());
    }
    if let Some(n) = fields.concurrency {
        body.insert("concurrency".into(), n.into());
    }
    if let Some(preset) = &fields.retry_preset {
        body.insert("retry".into(), serde_json::json!({ "preset": preset }));
    }
    if let Some(description) = &fields.description {
        body.insert("description".into(), description.clone().into());
    }
    Ok(body)
}

/// The call a `subscriptions` command makes.
fn subscription_call(
    command: &SubscriptionsCommand,
) -> Result<(&'static str, String, Option<Value>), String> {
    let at = |id: &str, action: &str| format!("/admin/subscriptions/{id}{action}");
    Ok(match command {
        SubscriptionsCommand::Create {
            tenant,
            fields,
            scheme,
            algorithm,
            secret_env,
            disabled,
        } => {
            let mut body = subscription_body(fields)?;
            if let Some(tenant) = tenant {
                body.insert("tenant".into(), tenant.clone().into());
            }
            body.insert("scheme".into(), scheme.clone().into());
            if let Some(algorithm) = algorithm {
                body.insert("algorithm".into(), algorithm.clone().into());
            }
            if let Some(name) = secret_env {
                let secret = std::env::var(name)
                    .map_err(|_| format!("--secret-env {name}: the variable is not set"))?;
                body.insert("secret".into(), secret.into());
            }
            if *disabled {
                body.insert("enabled".into(), false.into());
            }
            ("POST", "/admin/subscriptions".into(), Some(body.into()))
        }
        SubscriptionsCommand::List {
            tenant,
            event_type,
            state,
            limit,
            after,
        } => (
            "GET",
            format!(
                "/admin/subscriptions{}",
                query(&[
                    ("tenant", tenant.clone()),
                    ("event_type", event_type.clone()),
                    ("state", state.clone()),
                    ("limit", limit.map(|l| l.to_string())),
                    ("after", after.clone()),
                ])
            ),
            None,
        ),
        SubscriptionsCommand::Show { id } => ("GET", at(id, ""), None),
        SubscriptionsCommand::Update { id, fields } => {
            ("PATCH", at(id, ""), Some(subscription_body(fields)?.into()))
        }
        SubscriptionsCommand::Delete { id } => ("DELETE", at(id, ""), None),
        SubscriptionsCommand::RotateSecret { id, overlap } => {
            let mut body = serde_json::Map::new();
            if let Some(overlap) = overlap {
                body.insert("overlap".into(), overlap.clone().into());
            }
            ("POST", at(id, "/rotate-secret"), Some(body.into()))
        }
        SubscriptionsCommand::Enable { id } => ("POST", at(id, "/enable"), None),
        SubscriptionsCommand::Disable { id } => ("POST", at(id, "/disable"), None),
        SubscriptionsCommand::Test { id } => ("POST", at(id, "/test"), None),
        SubscriptionsCommand::Replay { id, since } => {
            let since = query(&[("since", since.map(|s| s.to_string()))]);
            ("POST", at(id, &format!("/replay{since}")), None)
        }
    })
}

pub fn subscriptions(args: &AdminArgs, command: &SubscriptionsCommand) -> ExitCode {
    let result = subscription_call(command).and_then(|(method, path, body)| {
        runtime().block_on(call(args, method, &path, body.as_ref()))
    });
    let list = matches!(command, SubscriptionsCommand::List { .. });
    finish(result, args.json, |body| {
        if list {
            print_subscriptions(body)
        } else {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default())
        }
    })
}

pub fn portal(args: &AdminArgs, command: &PortalCommand) -> ExitCode {
    let (path, body) = match command {
        PortalCommand::Link {
            tenant,
            ttl,
            read_only,
        } => (
            format!("/admin/tenants/{tenant}/portal"),
            serde_json::json!({ "ttl": ttl, "read_only": read_only }),
        ),
        PortalCommand::Revoke { tenant } => (
            format!("/admin/tenants/{tenant}/portal/revoke"),
            serde_json::json!({}),
        ),
    };
    let result = runtime().block_on(call(args, "POST", &path, Some(&body)));
    finish(result, args.json, |body| match command {
        PortalCommand::Link { tenant, .. } => {
            println!("{}", body["url"].as_str().unwrap_or_default());
            let access = if body["read_only"] == true {
                "read-only"
            } else {
                "full"
            };
            println!(
                "tenant {tenant}, {access} access, until {}",
                when(&body["expires_at"])
            );
        }
        PortalCommand::Revoke { tenant } => {
            println!("tenant {tenant}: every earlier portal link revoked")
        }
    })
}

pub fn jobs(args: &AdminArgs, command: &JobsCommand) -> ExitCode {
    let (method, path) = match command {
        JobsCommand::List => ("GET", "/admin/jobs".to_string()),
        JobsCommand::Show { id } => ("GET", format!("/admin/jobs/{id}")),
        JobsCommand::Cancel { id } => ("POST", format!("/admin/jobs/{id}/cancel")),
    };
    let result = runtime().block_on(call(args, method, &path, None));
    finish(result, args.json, |body| {
        let jobs = match command {
            JobsCommand::List => body["jobs"].as_array().cloned().unwrap_or_default(),
            _ => vec![body.clone()],
        };
        println!(
            "{:<28} {:<10} {:>9} {:>8}  STARTED",
            "JOB", "STATE", "REPLAYED", "SKIPPED"
        );
        for job in jobs {
            println!(
                "{:<28} {:<10} {:>9} {:>8}  {}",
                job["id"].as_str().unwrap_or(""),
                job["state"].as_str().unwrap_or(""),
                job["replayed"].as_u64().unwrap_or(0),
                job["skipped"].as_u64().unwrap_or(0),
                when(&job["started_ms"]),
            );
        }
    })
}
