//! The admin API from the command line: `hookgate deliveries ...` and `hookgate endpoints ...`
//! call the running hookgate's admin port and print what it says.

use std::process::ExitCode;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use serde_json::Value;

use crate::cli::{AdminArgs, DeliveriesCommand, EndpointsCommand};
use crate::http_io::exchange;

/// Calls `method path` on the admin port; the status and the JSON answer.
async fn call(args: &AdminArgs, method: &str, path: &str) -> Result<(u16, Value), String> {
    let base = args.admin.trim_end_matches('/');
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
        .map_err(|e| format!("cannot reach the admin port at {base}: {e}"))?;
    let mut request =
        RequestHeader::build(method, path.as_bytes(), None).map_err(|e| e.to_string())?;
    let set = |r: &mut RequestHeader, k: &'static str, v: String| {
        r.insert_header(k, v).map_err(|e| e.to_string())
    };
    set(&mut request, "Host", authority.to_string())?;
    set(&mut request, "Content-Length", "0".into())?;
    if let Some(token) = &args.token {
        set(&mut request, "Authorization", format!("Bearer {token}"))?;
    }
    exchange(&mut http, request, Bytes::new()).await?;
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
            d["endpoint"].as_str().unwrap_or(""),
            d["state"].as_str().unwrap_or(""),
            d["attempts"].as_array().map_or(0, Vec::len),
        );
    }
}

fn print_endpoints(json: &Value) {
    println!("{:<20} {:<8} REASON", "ENDPOINT", "ENABLED");
    for e in json["endpoints"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<20} {:<8} {}",
            e["name"].as_str().unwrap_or(""),
            e["enabled"].as_bool().unwrap_or(true),
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

pub fn deliveries(args: &AdminArgs, command: &DeliveriesCommand) -> ExitCode {
    let (method, path) = match command {
        DeliveriesCommand::List { endpoint, state } => (
            "GET",
            format!(
                "/admin/deliveries{}",
                query(&[("endpoint", endpoint.clone()), ("state", state.clone())])
            ),
        ),
        DeliveriesCommand::Show { id } => ("GET", format!("/admin/deliveries/{id}")),
        DeliveriesCommand::Retry { id } => ("POST", format!("/admin/deliveries/{id}/retry")),
        DeliveriesCommand::Replay { endpoint, since } => (
            "POST",
            format!(
                "/admin/endpoints/{endpoint}/replay{}",
                query(&[("since", since.map(|s| s.to_string()))])
            ),
        ),
        DeliveriesCommand::Purge { endpoint } => (
            "DELETE",
            format!(
                "/admin/deliveries{}",
                query(&[
                    ("state", Some("dead".into())),
                    ("endpoint", endpoint.clone())
                ])
            ),
        ),
    };
    let result = runtime().block_on(call(args, method, &path));
    let list = matches!(command, DeliveriesCommand::List { .. });
    finish(result, args.json, |body| {
        if list {
            print_deliveries(body)
        } else {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default())
        }
    })
}

pub fn endpoints(args: &AdminArgs, command: &EndpointsCommand) -> ExitCode {
    let (method, path) = match command {
        EndpointsCommand::List => ("GET", "/admin/endpoints".to_string()),
        EndpointsCommand::Enable { name } => ("POST", format!("/admin/endpoints/{name}/enable")),
        EndpointsCommand::Disable { name } => ("POST", format!("/admin/endpoints/{name}/disable")),
    };
    let result = runtime().block_on(call(args, method, &path));
    let list = matches!(command, EndpointsCommand::List);
    finish(result, args.json, |body| {
        if list {
            print_endpoints(body)
        } else {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default())
        }
    })
}
