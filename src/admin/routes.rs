//! `/admin/routes`: the `deliver: queue` routes, their backlog and whether they are paused.
//! A paused route still verifies and stores every webhook; nothing is sent to its app
//! until it is resumed. The pause is kept in the store (as an endpoint's disabled state,
//! under the route's queue name), so every replica and a restart keep it.

use serde_json::json;

use crate::clock::now_ms;
use crate::config::QueuedRoute;
use crate::error_response::ErrorResponse;
use crate::outbound::facade::Endpoints;
use crate::store::queue::{EndpointState, Queue};

type Answer = Result<serde_json::Value, ErrorResponse>;

fn unavailable(e: crate::store::StoreError) -> ErrorResponse {
    ErrorResponse::new(503, "queue_unavailable", e.to_string())
}

/// `GET /admin/routes`: each `deliver: queue` route with its depth, pause and app health.
pub async fn list(queue: &dyn Queue, endpoints: &Endpoints) -> Answer {
    let (depths, states) = match (queue.depth().await, queue.endpoint_states().await) {
        (Ok(depths), Ok(states)) => (depths, states),
        (Err(e), _) | (_, Err(e)) => return Err(unavailable(e)),
    };
    let now = now_ms();
    let routes: Vec<_> = endpoints
        .queued_routes()
        .into_iter()
        .map(|name| {
            let queue_name = QueuedRoute::queue_name(&name);
            let depth = depths.iter().find(|d| d.endpoint == queue_name);
            let state = states
                .iter()
                .find(|(n, _)| *n == queue_name)
                .map(|(_, s)| s);
            json!({
                "name": name,
                "deliver": "queue",
                "paused": state.is_some_and(|s| !s.enabled),
                "paused_since_ms": state.filter(|s| !s.enabled).map(|s| s.since_ms),
                "pending": depth.map_or(0, |d| d.pending),
                "scheduled": depth.map_or(0, |d| d.scheduled),
                "dead": depth.map_or(0, |d| d.dead),
                "oldest_waiting_ms": depth.and_then(|d| d.oldest_waiting_ms),
                "health": endpoints.route_health(&name, now),
            })
        })
        .collect();
    Ok(json!({ "routes": routes }))
}

/// `POST /admin/routes/{name}/pause` or `/resume`.
pub async fn pause(queue: &dyn Queue, endpoints: &Endpoints, name: &str, paused: bool) -> Answer {
    if !endpoints.queued_routes().iter().any(|r| r == name) {
        return Err(ErrorResponse::new(
            404,
            "route_not_found",
            format!("no deliver: queue route is named {name:?}"),
        ));
    }
    let state = EndpointState {
        enabled: !paused,
        reason: if paused { "paused" } else { "resumed" }.to_string(),
        since_ms: now_ms(),
        paused_until_ms: None,
    };
    queue
        .set_endpoint_state(&QueuedRoute::queue_name(name), &state)
        .await
        .map_err(unavailable)?;
    tracing::info!(
        route = name,
        paused,
        "route delivery {} through the admin API",
        state.reason
    );
    Ok(json!({ "name": name, "paused": paused, "since_ms": state.since_ms }))
}

/// The routes paused now, for `/readyz` and the overview.
pub async fn paused(queue: &dyn Queue) -> Vec<String> {
    let states = queue.endpoint_states().await.unwrap_or_default();
    states
        .into_iter()
        .filter(|(_, s)| !s.enabled)
        .filter_map(|(name, _)| name.strip_prefix("route:").map(str::to_string))
        .collect()
}
