//! `/admin/deliveries`: list, purge and replay stored deliveries through one filter
//! (`endpoint` or `route`, `subscription`, `tenant`, `event_type`, `since`, `until`), so that a purge
//! or a replay touches exactly the rows the same query lists. A purge or a replay with no
//! filter at all must say `all=true`.

use serde_json::json;

use super::jobs::{Job, Jobs, ReplaySpec, Replayed};
use super::subscriptions::{page_size, Answer, Params};
use crate::clock::now_ms;
use crate::config::values::{display_url, tenant, whole_number};
use crate::error_response::ErrorResponse;
use crate::outbound::facade::destination_id;
use crate::store::history::{Cursor, Delivered, HistoryQuery};
use crate::store::queue::{Bucket, DeliveryFilter, Queue, State};
use crate::store::HistoryStore;

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
    let all = match param("all").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad("bad_request", "all is true or false").with_field("all")),
    };
    if filter.is_empty() && !all {
        return Err(bad(
            "filter_required",
            "name the deliveries (endpoint, subscription, tenant, event_type, since, until), or send all=true",
        ));
    }
    Ok(filter)
}

/// The delivery history's query for `param`: the filter, `event_id`, `idempotency_key`,
/// `after` (the previous page's `next`) and `limit`.
fn history_query(
    filter: DeliveryFilter,
    param: &Params<'_>,
) -> Result<HistoryQuery, ErrorResponse> {
    Ok(HistoryQuery {
        filter,
        event_id: param("event_id"),
        idempotency_key: param("idempotency_key"),
        after: after(param)?,
        limit: page_size(param)?,
    })
}

/// A list's `after`, the `next` of an earlier page: `<ms>-<id>`, where the history's `ms`
/// is when a message was delivered and the stored list's when it was accepted.
fn after(param: &Params<'_>) -> Result<Option<Cursor>, ErrorResponse> {
    match param("after").filter(|after| !after.is_empty()) {
        None => Ok(None),
        Some(text) => Cursor::parse(&text).map(Some).ok_or_else(|| {
            bad("invalid_cursor", "after is the next of an earlier page").with_field("after")
        }),
    }
}

/// A delivered message as the admin API shows it.
fn delivered(row: Delivered) -> serde_json::Value {
    let mut value = json!(row.record);
    value["state"] = json!("delivered");
    value["delivered_ms"] = json!(row.delivered_ms);
    value["payload_bytes"] = json!(row.payload_bytes);
    present(value)
}

/// The most of a payload the admin API shows.
const PAYLOAD_SHOWN: usize = 16 * 1024;

/// A payload as the admin API shows it: its first [`PAYLOAD_SHOWN`] bytes as text (none
/// once the history dropped it), and its whole size.
fn payload_fields(value: &mut serde_json::Value, payload: Option<&[u8]>, total_bytes: usize) {
    let start = payload.map(|p| &p[..p.len().min(PAYLOAD_SHOWN)]);
    value["payload"] = json!(start.map(String::from_utf8_lossy));
    value["payload_bytes"] = json!(total_bytes);
    value["payload_truncated"] = json!(start.is_some_and(|s| total_bytes > s.len()));
}

/// `GET /admin/deliveries?state=pending|scheduled|dead|delivered&<filter>`: without a
/// state, those still stored, oldest first; `delivered`, the delivery history, newest
/// first. Both are paged (`after`, `limit`; `next` is the next page's `after`).
/// `event_id` and `idempotency_key` find a message in either.
pub async fn list(queue: &dyn Queue, history: &dyn HistoryStore, param: &Params<'_>) -> Answer {
    let mut filter = filter(param)?;
    let (event_id, key) = (param("event_id"), param("idempotency_key"));
    let searched = event_id.is_some() || key.is_some();
    let state = match param("state").as_deref() {
        None | Some("") => None,
        Some("delivered") => {
            let query = history_query(filter, param)?;
            let rows = history.list(&query).await.map_err(unavailable)?;
            let next = (rows.len() == query.limit)
                .then(|| rows.last().map(|r| r.cursor().to_string()))
                .flatten();
            let list: Vec<_> = rows.into_iter().map(delivered).collect();
            return Ok((200, json!({ "deliveries": list, "next": next })));
        }
        Some(name) => {
            let bucket = bucket(name)?;
            filter.bucket = Some(bucket);
            Some(stored_state(bucket))
        }
    };
    // Stored deliveries come oldest first, paged like the history; a search answers every
    // match, stored and delivered, on one page.
    let (from, limit) = (after(param)?, page_size(param)?);
    let (from, limit) = match searched {
        true => (None, usize::MAX),
        false => (from, limit),
    };
    let place = |r: &crate::store::queue::Record| Cursor {
        delivered_ms: r.created_ms,
        id: r.id.clone(),
    };
    let mut stored: Vec<_> = queue
        .list(filter.endpoint.as_deref(), state)
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter(|r| filter.matches(r) && from.as_ref().is_none_or(|a| place(r) > *a))
        .filter(|r| {
            let event = r.event.as_ref().map(|e| &e.event_id);
            event_id.as_ref().is_none_or(|id| event == Some(id))
                && key
                    .as_ref()
                    .is_none_or(|k| r.idempotency_key.as_ref() == Some(k))
        })
        .collect();
    stored.sort_by_key(place);
    let next = (stored.len() > limit).then(|| place(&stored[limit - 1]).to_string());
    stored.truncate(limit);
    let mut list: Vec<_> = stored
        .into_iter()
        .map(|r| present(json!(r.redacted())))
        .collect();
    if searched && state.is_none() {
        let query = history_query(filter, param)?;
        let rows = history.list(&query).await.map_err(unavailable)?;
        list.extend(rows.into_iter().map(delivered));
    }
    Ok((200, json!({ "deliveries": list, "next": next })))
}

/// `GET /admin/deliveries/{id}`: a stored delivery with the start of its payload, or one
/// from the delivery history (with the start of its payload while that is kept).
pub async fn show(
    queue: &dyn Queue,
    history: &dyn HistoryStore,
    id: &str,
) -> Result<Option<serde_json::Value>, crate::store::StoreError> {
    let Some(record) = queue.get(id).await? else {
        return Ok(history.get(id).await?.map(|(row, payload)| {
            let total = row.payload_bytes;
            let mut value = delivered(row);
            payload_fields(&mut value, payload.as_deref(), total);
            value
        }));
    };
    let mut delivery = json!(record.redacted());
    if let Some(body) = queue.body(id).await? {
        payload_fields(&mut delivery, Some(&body), body.len());
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

/// `POST /admin/deliveries/replay`: [`replay`] of the dead deliveries a query names, or a
/// job ([`Jobs`]) for a JSON body `{route | endpoint | subscription, tenant, event_type,
/// since, until, states, new_ids}` (times as unix milliseconds or RFC 3339; `states` of
/// `dead`, the default, `scheduled`, `pending` and `delivered`). Answers the count when the
/// job ended within a moment (200), or the job to follow (202).
pub async fn replay_request(
    queue: &dyn Queue,
    jobs: &Jobs,
    param: &Params<'_>,
    body: &[u8],
) -> Answer {
    if body.iter().all(u8::is_ascii_whitespace) {
        return replay(queue, &scoped(param)?).await;
    }
    let spec = replay_spec(body)?;
    tracing::info!(filter = ?spec.filter, states = ?spec.states, "deliveries replayed through the admin API");
    let job = jobs.start(spec).await;
    Ok(job_answer(&job))
}

/// A started job as its start answers it: the count once it ended, or the job to follow.
pub fn job_answer(job: &Job) -> (u16, serde_json::Value) {
    let view = job.view();
    match view["state"].as_str() {
        Some("running") => (202, json!({ "job": view })),
        _ => (
            200,
            json!({ "replayed": view["replayed"], "skipped": view["skipped"], "job": view }),
        ),
    }
}

/// A replay's body, checked.
fn replay_spec(body: &[u8]) -> Result<ReplaySpec, ErrorResponse> {
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
        "new_ids",
    ];
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad("bad_request", format!("unknown field {unknown:?}")));
    }
    let text = |name: &str| -> Result<Option<String>, ErrorResponse> {
        match fields.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if !matches!(name, "all" | "new_ids") => {
                Ok(Some(s.clone()))
            }
            Some(number @ serde_json::Value::Number(_)) if matches!(name, "since" | "until") => {
                whole_number(number)
                    .map(|ms| Some(ms.to_string()))
                    .ok_or_else(|| {
                        bad(
                            "bad_request",
                            format!("{name} is a time in unix milliseconds, not {number}"),
                        )
                    })
            }
            Some(serde_json::Value::Bool(b)) if matches!(name, "all" | "new_ids") => {
                Ok(Some(b.to_string()))
            }
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
        None => vec![Replayed::Stored(Bucket::Dead)],
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|s| {
                s.as_str().and_then(Replayed::parse).ok_or_else(|| {
                    bad(
                        "bad_request",
                        "states holds pending, scheduled, dead and delivered",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("bad_request", "states is a list such as [\"dead\"]")),
    };
    let new_ids = param("new_ids").as_deref() == Some("true");
    if new_ids && states.iter().any(|s| *s != Replayed::Delivered) {
        return Err(bad(
            "bad_request",
            "new_ids is for delivered messages sent again; dead and waiting ones keep their ids",
        )
        .with_field("new_ids"));
    }
    Ok(ReplaySpec {
        filter,
        states,
        new_ids,
    })
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
