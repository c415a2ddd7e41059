//! `GET /admin/openapi.json`: the OpenAPI 3.1 description of every listener's API, as
//! checked in at `docs/openapi.json` (made by `docs/openapi/build.py`; `tests/openapi.rs`
//! holds it to the routes the code serves).

use http::Response;

const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub fn document() -> Response<Vec<u8>> {
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Content-Length", DOCUMENT.len())
        .body(DOCUMENT.as_bytes().to_vec())
        .expect("static response parts are valid")
}
