//! The console at `/ui/` on the admin port: three files embedded in the binary (no CDN, no
//! build step), served with a strict Content-Security-Policy. The page holds nothing
//! itself: it signs in with the admin token and reads everything through the admin API.

use http::Response;

use super::page;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// Only the console's own script and style; no inline code, no frames, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's answer for `path` (under `/ui`), or `None` when it is not the console's.
pub fn asset(path: &str) -> Option<Response<Vec<u8>>> {
    if !(path == "/ui" || path.starts_with("/ui/")) {
        return None;
    }
    let (status, content_type, body) = match path {
        "/ui" => return Some(page::to_directory("/ui/")),
        "/ui/" | "/ui/index.html" => (200, "text/html; charset=utf-8", INDEX),
        "/ui/app.js" => (200, "text/javascript; charset=utf-8", SCRIPT),
        "/ui/dom.js" => (200, "text/javascript; charset=utf-8", page::DOM_JS),
        "/ui/app.css" => (200, "text/css; charset=utf-8", STYLE),
        "/ui/base.css" => (200, "text/css; charset=utf-8", page::BASE_CSS),
        _ => (404, "text/plain; charset=utf-8", "not a console file\n"),
    };
    let body = body.as_bytes().to_vec();
    Some(page::file(status, content_type, body, CSP, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_files_are_served_with_a_strict_policy() {
        let page = asset("/ui/").unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
        assert_eq!(
            asset("/ui/app.js").unwrap().headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(asset("/ui/../etc/passwd").unwrap().status(), 404);
        assert_eq!(asset("/ui").unwrap().status(), 308);
        assert!(asset("/metrics").is_none());
        // Nothing from elsewhere: no script, style or image from another origin, and the
        // API is asked on this one.
        page::assert_self_contained(&[INDEX, SCRIPT, STYLE]);
        assert!(SCRIPT.contains("fetch(`/admin/${path}`"));
        assert_eq!(asset("/ui/dom.js").unwrap().status(), 200);
    }
}
