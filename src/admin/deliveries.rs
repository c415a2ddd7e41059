//! `/admin/deliveries`: list, purge and replay stored deliveries through one filter
//! (`endpoint` or `route`, `subscription`, `tenant`, `event_type`, `since`, `until`), so that a purge
//! or a replay touches exactly the rows the same query lists. A purge or a replay with no
//! filter at all must say `all=true`.

use serde_json::json;

use super::subscriptions::{Answer, Params};
use crate::clock::now_ms;
use crate::config::values::{display_url, tenant};
use crate::error_response::ErrorResponse;
use crate::outbound::facade::destination_id;
use crate::recent::deliveries::payload_fields;
use crate::recent::RecentDeliveries;
use crate::store::queue::{Bucket, DeliveryFilter, Queue, State};

fn bad(code: &'static str, message: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(400, code, message)
}

fn unavailable(e: crate::store::StoreError) -> ErrorResponse {
    ErrorResponse::new(503, "queue_unavailable", e.to_string())
}

/// The filter of a query: each parameter given, with times in unix milliseconds.
pub fn filter(param: &Params<'_>) -> Result<DeliveryFilter, ErrorResponse> {
    let time = |name: &str| {
        param(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    bad(
                        "bad_request",
                        format!("{name} is a time in unix milliseconds, not {v:?}"),
                    )
                })
            })
            .transpose()
    };
    // A `deliver: queue` route's webhooks are kept under its queue name.
    let route = param("route").map(|r| crate::config::QueuedRoute::queue_name(&r));
    if route.is_some() && param("endpoint").is_some() {
        return Err(bad("bad_request", "give endpoint or route, not both"));
    }
    let filter = DeliveryFilter {
        endpoint: route.or_else(|| param("endpoint")),
        subscription: param("subscription"),
        tenant: param("tenant"),
        event_type: param("event_type"),
        since_ms: time("since")?,
        until_ms: time("until")?,
        bucket: None,
    };
    if let Some(name) = &filter.tenant {
        tenant(name).map_err(|e| bad("invalid_tenant", e))?;
    }
    Ok(filter)
}

/// A stored delivery's state by name: `pending` (not attempted in this round),
/// `scheduled` (waiting for a retry) or `dead`.
fn bucket(name: &str) -> Result<Bucket, ErrorResponse> {
    Bucket::parse(name).ok_or_else(|| {
        bad(
            "bad_request",
            format!("state is pending, scheduled, dead or delivered, not {name:?}"),
        )
    })
}

/// Where the store keeps a bucket's deliveries.
fn stored_state(bucket: Bucket) -> State {
    match bucket {
        Bucket::Dead => State::Dead,
        Bucket::Pending | Bucket::Scheduled => State::Pending,
    }
}

/// A purge or a replay of everything must be asked for in so many words.
fn scoped(param: &Params<'_>) -> Result<DeliveryFilter, ErrorResponse> {
    let filter = filter(param)?;
    if filter.is_empty() && param("all").as_deref() != Some("true") {
        return Err(bad(
            "filter_required",
            "name the deliveries (endpoint, subscription, tenant, event_type, since, until), or send all=true",
        ));
    }
    Ok(filter)
}

/// `GET /admin/deliveries?state=pending|scheduled|dead|delivered&<filter>`: without a
/// state, those still stored; `delivered`, those this process delivered lately.
pub async fn list(queue: &dyn Queue, recent: &RecentDeliveries, param: &Params<'_>) -> Answer {
    let mut filter = filter(param)?;
    let state = match param("state").as_deref() {
        None | Some("") => None,
        Some("delivered") => {
            let list: Vec<_> = recent
                .list(|r| filter.matches(r))
                .into_iter()
                .map(present)
                .collect();
            return Ok((200, json!({ "deliveries": list })));
        }
        Some(name) => {
            let bucket = bucket(name)?;
            filter.bucket = Some(bucket);
            Some(stored_state(bucket))
        }
    };
    let stored = queue
        .list(filter.endpoint.as_deref(), state)
        .await
        .map_err(unavailable)?;
    let list: Vec<serde_json::Value> = stored
        .into_iter()
        .filter(|r| filter.matches(r))
        .map(|r| present(json!(r.redacted())))
        .collect();
    Ok((200, json!({ "deliveries": list })))
}

/// `GET /admin/deliveries/{id}`: a stored delivery with the start of its payload, or one
/// delivered lately (kept in memory with the start of its payload).
pub async fn show(
    queue: &dyn Queue,
    recent: &RecentDeliveries,
    id: &str,
) -> Result<Option<serde_json::Value>, crate::store::StoreError> {
    let Some(record) = queue.get(id).await? else {
        return Ok(recent.get(id).map(present));
    };
    let mut delivery = json!(record.redacted());
    if let Some(body) = queue.body(id).await? {
        payload_fields(&mut delivery, &body, body.len());
    }
    Ok(Some(present(delivery)))
}

/// A delivery as the admin API shows it: a per-request destination named by the hash its
/// state is kept under, and its URL without the query, where receivers often put tokens.
fn present(mut delivery: serde_json::Value) -> serde_json::Value {
    // One set of state names: a pending delivery that failed an attempt waits, scheduled.
    if delivery["state"] == "pending" && delivery["round_attempts"].as_u64().unwrap_or(0) > 0 {
        delivery["state"] = json!("scheduled");
    }
    if let Some(url) = delivery["target"]["url"].as_str().map(str::to_string) {
        delivery["destination"] = json!({ "name": destination_id(&url), "url": display_url(&url) });
        delivery["target"]["url"] = json!(display_url(&url));
    }
    delivery
}

/// `DELETE /admin/deliveries?state=dead|pending&<filter>`: deletes what the same list shows.
pub async fn purge(queue: &dyn Queue, param: &Params<'_>) -> Answer {
    let Some(bucket) = param("state").as_deref().map(bucket).transpose()? else {
        return Err(bad(
            "bad_request",
            "purge needs state=dead, state=scheduled or state=pending",
        ));
    };
    let filter = DeliveryFilter {
        bucket: Some(bucket),
        ..scoped(param)?
    };
    let state = stored_state(bucket);
    let purged = queue.purge(&filter, state).await.map_err(unavailable)?;
    tracing::info!(
        purged,
        ?filter,
        ?state,
        "deliveries purged through the admin API"
    );
    Ok((200, json!({ "purged": purged })))
}

/// `POST /admin/deliveries/replay?<filter>`: the dead deliveries the same list shows are
/// attempted again now.
pub async fn replay(queue: &dyn Queue, filter: &DeliveryFilter) -> Answer {
    let replayed = queue
        .replay_dead(filter, now_ms())
        .await
        .map_err(unavailable)?;
    Ok((200, json!({ "replayed": replayed })))
}

/// `POST /admin/deliveries/replay`: [`replay`] of the deliveries a query names, or a JSON
/// body `{route | endpoint | subscription, tenant, event_type, since, until, states}`
/// (times as unix milliseconds or RFC 3339; `states` of `dead`, the default, `scheduled`
/// and `pending`, which are then made due now). Answers the count.
pub async fn replay_request(queue: &dyn Queue, param: &Params<'_>, body: &[u8]) -> Answer {
    if body.iter().all(u8::is_ascii_whitespace) {
        return replay(queue, &scoped(param)?).await;
    }
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| {
            bad(
                "invalid_json",
                format!("the body is not a JSON object: {e}"),
            )
        })?;
    let known = [
        "route",
        "endpoint",
        "subscription",
        "tenant",
        "event_type",
        "since",
        "until",
        "states",
        "all",
    ];
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad("bad_request", format!("unknown field {unknown:?}")));
    }
    let text = |name: &str| -> Result<Option<String>, ErrorResponse> {
        match fields.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) if matches!(name, "since" | "until") => {
                Ok(Some(n.to_string()))
            }
            Some(serde_json::Value::Bool(b)) if name == "all" => Ok(Some(b.to_string())),
            Some(_) => Err(bad("bad_request", format!("{name} has the wrong type"))),
        }
    };
    let mut values = Vec::new();
    for name in known.iter().filter(|n| **n != "states") {
        let mut value = text(name)?;
        if matches!(*name, "since" | "until") {
            value = value.map(|v| unix_ms(&v)).transpose()?;
        }
        values.push((name.to_string(), value));
    }
    let param = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    let filter = scoped(&param)?;
    let states = match fields.get("states") {
        None => vec![Bucket::Dead],
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map_or_else(|| Err(bad("bad_request", "states holds names")), bucket)
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("bad_request", "states is a list such as [\"dead\"]")),
    };
    let mut replayed = 0;
    for state in states {
        let filter = DeliveryFilter {
            bucket: Some(state),
            ..filter.clone()
        };
        replayed += if state == Bucket::Dead {
            queue.replay_dead(&filter, now_ms()).await
        } else {
            due_now(queue, &filter).await
        }
        .map_err(unavailable)?;
    }
    tracing::info!(
        replayed,
        ?filter,
        "deliveries replayed through the admin API"
    );
    Ok((200, json!({ "replayed": replayed })))
}

/// Makes the waiting deliveries `filter` matches due now, with a fresh round of attempts.
async fn due_now(
    queue: &dyn Queue,
    filter: &DeliveryFilter,
) -> Result<usize, crate::store::StoreError> {
    let waiting = queue
        .list(filter.endpoint.as_deref(), Some(State::Pending))
        .await?;
    let mut made_due = 0;
    for record in waiting.iter().filter(|r| filter.matches(r)) {
        made_due += usize::from(queue.retry_now(&record.id, now_ms()).await?);
    }
    Ok(made_due)
}

/// A time as unix milliseconds, from milliseconds or RFC 3339.
fn unix_ms(value: &str) -> Result<String, ErrorResponse> {
    if value.parse::<u64>().is_ok() {
        return Ok(value.to_string());
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .map(|ms| ms.to_string())
        .ok_or_else(|| {
            bad(
                "bad_request",
                format!("{value:?} is not unix milliseconds or RFC 3339"),
            )
        })
}
