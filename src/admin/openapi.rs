//! `GET /admin/openapi.json`: the OpenAPI 3.1 description of every listener's API, as
//! checked in at `docs/openapi.json` (made by `docs/openapi/build.py`; `tests/openapi.rs`
//! holds it to the routes the code serves). The same document says which methods a path
//! takes, for the `Allow` of a 405.

use std::sync::OnceLock;

use http::Response;

use crate::error_response::ErrorResponse;

const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub fn document() -> Response<Vec<u8>> {
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Content-Length", DOCUMENT.len())
        .body(DOCUMENT.as_bytes().to_vec())
        .expect("static response parts are valid")
}

/// A documented path of the admin port: its segments (`None` for a parameter), and the methods it takes.
type Documented = (Vec<Option<String>>, String);

/// The document's paths, those with fewer parameters first, so that a literal segment
/// (`/admin/deliveries/replay`) wins over a parameter (`/admin/deliveries/{id}`).
fn paths() -> &'static [Documented] {
    static PATHS: OnceLock<Vec<Documented>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let doc: serde_json::Value =
            serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON (tests/openapi.rs)");
        let mut paths: Vec<Documented> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            // The admin port's: not the outbound listener's (their `servers` says so).
            .filter(|(_, item)| item.get("servers").is_none())
            .map(|(path, item)| {
                let segments = path
                    .split('/')
                    .skip(1)
                    .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                    .collect();
                let methods: Vec<&str> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
                    .into_iter()
                    .filter(|m| item.get(m.to_lowercase()).is_some())
                    .collect();
                (segments, methods.join(", "))
            })
            .collect();
        paths.sort_by_key(|(segments, _)| segments.iter().filter(|s| s.is_none()).count());
        paths
    })
}

/// `405 method_not_allowed` for a method other than GET or HEAD on the console's or the
/// portal's files (`/ui/app.js`), which the document does not list one by one.
pub fn not_a_read(method: &str) -> Option<ErrorResponse> {
    (!matches!(method, "GET" | "HEAD")).then(|| {
        ErrorResponse::new(
            405,
            "method_not_allowed",
            format!("a page takes GET, not {method}"),
        )
        .with_header("Allow", "GET")
    })
}

/// `405 method_not_allowed` for a call to a documented `path` with a `method` it does not
/// take, with `Allow` naming those it does; `None` for a method it takes, or a path the
/// document does not hold. A literal segment wins over a parameter, as in OpenAPI: `GET
/// /admin/deliveries/replay` is refused, not read as a delivery named `replay`.
pub fn method_not_allowed(method: &str, path: &str) -> Option<ErrorResponse> {
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let (_, allow) = paths().iter().find(|(segments, _)| {
        segments.len() == parts.len()
            && segments
                .iter()
                .zip(&parts)
                // A parameter takes a non-empty segment; `/ui/`'s last segment is empty.
                .all(|(s, p)| s.as_deref().map_or(!p.is_empty(), |s| s == *p))
    })?;
    // HEAD goes wherever GET does (load balancers' health checks use it).
    let asked = if method == "HEAD" { "GET" } else { method };
    if allow.split(", ").any(|m| m == asked) {
        return None;
    }
    Some(
        ErrorResponse::new(
            405,
            "method_not_allowed",
            format!("{path} takes {allow}, not {method}"),
        )
        .with_header("Allow", allow.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_documented_path_names_its_methods_and_a_literal_wins_over_a_parameter() {
        let e = method_not_allowed("GET", "/admin/deliveries/replay").unwrap();
        assert_eq!((e.status, e.headers[0].1.as_str()), (405, "POST"));
        let e = method_not_allowed("PUT", "/admin/subscriptions/sub_1").unwrap();
        assert_eq!(e.headers[0].1, "GET, PATCH, DELETE");
        assert!(method_not_allowed("GET", "/admin/nothing/here").is_none());
        assert!(method_not_allowed("PATCH", "/admin/subscriptions/sub_1").is_none());
        assert!(method_not_allowed("HEAD", "/healthz").is_none());
        assert!(method_not_allowed("GET", "/nope").is_none());
        assert_eq!(method_not_allowed("POST", "/healthz").unwrap().status, 405);
        assert!(method_not_allowed("GET", "/admin/subscriptions//test").is_none());
    }
}
