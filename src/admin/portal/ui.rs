//! The portal's page: three files embedded in the binary, as the console's, with the
//! vendor's title and accent filled in and a Content-Security-Policy whose
//! `frame-ancestors` lists only `admin.portal.frame_ancestors` (`'none'` by default).

use http::Response;

use super::super::page;
use crate::config::PortalConfig;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

fn csp(config: &PortalConfig) -> String {
    let ancestors = if config.frame_ancestors.is_empty() {
        "'none'".to_string()
    } else {
        config.frame_ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
}

/// Text for an HTML page: nothing in it can open a tag or an attribute.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The answer for `path` (`/portal` or under `/portal/`, not the API).
pub fn asset(path: &str, config: &PortalConfig) -> Response<Vec<u8>> {
    let (status, content_type, body) = match path {
        "/portal" => return page::to_directory("/portal/"),
        "/portal/" | "/portal/index.html" => (
            200,
            "text/html; charset=utf-8",
            INDEX.replace("{{title}}", &html_text(&config.title)),
        ),
        "/portal/app.js" => (200, "text/javascript; charset=utf-8", SCRIPT.to_string()),
        "/portal/dom.js" => (
            200,
            "text/javascript; charset=utf-8",
            page::DOM_JS.to_string(),
        ),
        // The accent was checked to be `#` and hex digits when the config was loaded.
        "/portal/app.css" => (
            200,
            "text/css; charset=utf-8",
            STYLE.replace("{{accent}}", &config.accent),
        ),
        "/portal/base.css" => (200, "text/css; charset=utf-8", page::BASE_CSS.to_string()),
        _ => (
            404,
            "text/plain; charset=utf-8",
            "not a portal file\n".to_string(),
        ),
    };
    // X-Frame-Options cannot name origins: only without any, where CSP says 'none' too.
    let deny_frames = config.frame_ancestors.is_empty();
    page::file(
        status,
        content_type,
        body.into_bytes(),
        &csp(config),
        deny_frames,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(ancestors: &[&str]) -> PortalConfig {
        PortalConfig {
            signing_key: Secret::new("k".repeat(32)),
            listen: None,
            public_url: None,
            frame_ancestors: ancestors.iter().map(|a| a.to_string()).collect(),
            title: "<Acme> & \"co\"".into(),
            accent: "#123456".into(),
        }
    }

    #[test]
    fn the_portal_is_framed_only_where_the_config_says() {
        let page = asset("/portal/", &config(&[]));
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.ends_with("frame-ancestors 'none'") && !csp.contains("unsafe"));
        let page = asset("/portal/", &config(&["https://app.vendor.example"]));
        assert!(page.headers().get("x-frame-options").is_none());
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.ends_with("frame-ancestors https://app.vendor.example"));
        let html = String::from_utf8(page.into_body()).unwrap();
        assert!(html.contains("&lt;Acme&gt; &amp; &quot;co&quot;") && !html.contains("<Acme>"));
        let css = asset("/portal/app.css", &config(&[])).into_body();
        assert!(String::from_utf8(css).unwrap().contains("#123456"));
        assert_eq!(asset("/portal/../etc/passwd", &config(&[])).status(), 404);
        assert_eq!(asset("/portal", &config(&[])).status(), 308);
    }

    #[test]
    fn the_page_asks_nothing_of_another_origin_and_writes_text_only() {
        page::assert_self_contained(&[INDEX, SCRIPT, STYLE]);
        assert!(SCRIPT.contains("fetch(`/portal/api/${path}`"));
    }
}
