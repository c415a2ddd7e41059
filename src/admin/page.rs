//! What the console (`/ui/`) and the portal (`/portal/`) share: the page script's helpers
//! (`dom.js`: text-only elements, times, API errors) and the base style (`base.css`), each
//! served under both pages, and the headers every page file is served with.

use http::Response;

pub const DOM_JS: &str = include_str!("page/dom.js");
pub const BASE_CSS: &str = include_str!("page/base.css");

/// A page file with a Content-Security-Policy; `X-Frame-Options: DENY` too when no origin
/// may frame it.
pub fn file(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    csp: &str,
    deny_frames: bool,
) -> Response<Vec<u8>> {
    let mut response = Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Content-Security-Policy", csp)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
        .header("Cache-Control", "no-store");
    if deny_frames {
        response = response.header("X-Frame-Options", "DENY");
    }
    response
        .body(body)
        .expect("static response parts are valid")
}

/// A redirect from a page's bare path (`/ui`) to its directory (`/ui/`).
pub fn to_directory(location: &'static str) -> Response<Vec<u8>> {
    Response::builder()
        .status(308)
        .header("Location", location)
        .header("Content-Length", 0)
        .body(Vec::new())
        .expect("static response parts are valid")
}

/// Page files ask nothing of another origin and put values on the page as text only.
#[cfg(test)]
pub fn assert_self_contained(files: &[&str]) {
    for file in files.iter().chain([&DOM_JS, &BASE_CSS]) {
        for external in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(",
            "fetch(\"http",
            "//cdn",
        ] {
            assert!(
                !file.contains(external),
                "an external reference: {external}"
            );
        }
        assert!(
            !file.contains("innerHTML"),
            "values go on the page as text only"
        );
    }
}
