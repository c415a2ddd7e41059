//! What the inbound routes protect, path by path: which route a path falls to, and
//! whether one set of routes protects every path at least as well as another. A reload
//! from a file that was caught half-written (the rest of its routes not there yet) must
//! not leave a signed path open through a catch-all, so the reloader compares the two.
//!
//! Paths are compared at sample points that cover every region the two route tables
//! can tell apart: each exact path, each prefix itself, and a path under each prefix
//! that no longer route takes.

use std::fmt;

use super::{PathMatch, RouteConfig, Verify};

/// The route `path` falls to, as the inbound side finds it: exact paths first, then the
/// longest prefix.
pub fn route_for<'r>(routes: &'r [RouteConfig], path: &str) -> Option<&'r RouteConfig> {
    routes
        .iter()
        .filter(|r| r.path.matches(path))
        .min_by_key(|r| r.path.precedence())
}

/// What a route does for a request before the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Protection {
    route: String,
    /// The scheme's name, or `None` for `verify: none`.
    scheme: Option<String>,
    dedupe: bool,
    rate_limit: bool,
}

impl Protection {
    fn of(route: &RouteConfig) -> Self {
        Protection {
            route: route.name.clone(),
            scheme: match &route.verify {
                Verify::Scheme(v) if !v.secrets.is_empty() => Some(v.scheme_name().to_string()),
                _ => None,
            },
            dedupe: route.dedupe.is_some(),
            rate_limit: route.rate_limit.is_some(),
        }
    }

    /// Whether `self` lacks a check `earlier` made.
    fn lowers(&self, earlier: &Protection) -> bool {
        (earlier.scheme.is_some() && self.scheme.is_none())
            || (earlier.dedupe && !self.dedupe)
            || (earlier.rate_limit && !self.rate_limit)
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "route {}: verify {}",
            self.route,
            self.scheme.as_deref().unwrap_or("none")
        )?;
        if self.dedupe {
            f.write_str(", dedupe")?;
        }
        if self.rate_limit {
            f.write_str(", rate limit")?;
        }
        Ok(())
    }
}

/// A path that new routes would protect less than the running ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// The path, or `prefix*` for the paths under a prefix.
    pub path: String,
    was: Protection,
    /// `None`: no route takes the path any more.
    becomes: Option<Protection>,
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.becomes {
            Some(now) => write!(f, "{} ({} -> {now})", self.path, self.was),
            None => write!(f, "{} ({} -> no route)", self.path, self.was),
        }
    }
}

/// A byte no request path holds: `prefix` + this stands for the paths under `prefix` that
/// no longer route takes.
const UNDER: char = '\u{1}';

/// Every path whose protection `new` lowers from `old`: a check (verification, dedupe, a
/// rate limit) dropped, the path shadowed by a route with fewer checks, or a verified
/// route removed.
pub fn lowered(old: &[RouteConfig], new: &[RouteConfig]) -> Vec<Exposure> {
    let mut samples: Vec<String> = Vec::new();
    for route in old.iter().chain(new) {
        match &route.path {
            PathMatch::Exact(path) => samples.push(path.to_ascii_lowercase()),
            PathMatch::Prefix(prefix) => {
                samples.push(prefix.to_ascii_lowercase());
                samples.push(format!("{}{UNDER}", prefix.to_ascii_lowercase()));
            }
        }
    }
    samples.sort();
    samples.dedup();
    let mut exposed = Vec::new();
    for sample in samples {
        let Some(was) = route_for(old, &sample).map(Protection::of) else {
            continue; // a path no route took before: a new one is not a weakening
        };
        let becomes = route_for(new, &sample).map(Protection::of);
        let lowered = match &becomes {
            Some(now) => now.lowers(&was),
            None => was.scheme.is_some(),
        };
        if lowered {
            exposed.push(Exposure {
                path: sample.replace(UNDER, "*"),
                was,
                becomes,
            });
        }
    }
    exposed
}

/// `verify: none` prefix routes under which a verified route's path lies: an app with
/// format-suffix routing (Rails' `.json`, old Spring's `.*`) may serve
/// `/hooks/github.json`, which the catch-all takes unsigned, with the signed handler.
pub fn suffix_risks(routes: &[RouteConfig]) -> Vec<String> {
    let mut risks = Vec::new();
    for open in routes.iter().filter(|r| matches!(r.verify, Verify::None)) {
        let PathMatch::Prefix(prefix) = &open.path else {
            continue;
        };
        for signed in routes.iter().filter(|r| !matches!(r.verify, Verify::None)) {
            let PathMatch::Exact(path) = &signed.path else {
                continue;
            };
            if open.path.matches(&format!("{path}.json")) {
                risks.push(format!(
                    "route {} (verify: none, {prefix}*) takes {path}.json and other suffixes of route {}'s path: an app that routes by format suffix would hand them to {}'s handler unsigned",
                    open.name, signed.name, signed.name
                ));
            }
        }
    }
    risks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Config};

    fn routes(yaml: &str) -> Vec<RouteConfig> {
        let text = format!(
            "inbound:\n  listen: 127.0.0.1:1\n  upstream: http://127.0.0.1:2\n  routes:\n{yaml}"
        );
        let env = |_: &str| None;
        let config: Config = load_str("t.yaml", &text, &env).unwrap();
        config.inbound.unwrap().routes
    }

    const FULL: &str = "    - { name: public, path: /public/*, verify: none }\n    - { name: hooksall, path: /hooks/*, verify: none }\n    - { name: rejento, path: /hooks/rejento, verify: { scheme: rejento, secrets: [s] }, dedupe: { id: \"header:X-Rejento-Delivery-Id\" }, rate_limit: { key: ip, limit: 10/s } }\n";

    #[test]
    fn a_truncated_file_that_drops_a_signed_route_is_a_weakening() {
        let full = routes(FULL);
        let cut = routes(
            &FULL
                .lines()
                .take(2)
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        );
        let exposed = lowered(&full, &cut);
        assert_eq!(exposed.len(), 1, "{exposed:?}");
        assert_eq!(exposed[0].path, "/hooks/rejento");
        assert_eq!(
            exposed[0].to_string(),
            "/hooks/rejento (route rejento: verify rejento, dedupe, rate limit -> route hooksall: verify none)"
        );
        // The other way round adds protection: nothing is lowered.
        assert!(lowered(&cut, &full).is_empty());
        assert!(lowered(&full, &full).is_empty());
    }

    #[test]
    fn dropped_checks_shadowing_and_removal_are_weakenings() {
        let full = routes(FULL);
        let no_dedupe = FULL.replace(", dedupe: { id: \"header:X-Rejento-Delivery-Id\" }", "");
        assert_eq!(lowered(&full, &routes(&no_dedupe)).len(), 1);
        let no_limit = FULL.replace(", rate_limit: { key: ip, limit: 10/s }", "");
        assert_eq!(lowered(&full, &routes(&no_limit)).len(), 1);
        let unsigned = FULL.replace("verify: { scheme: rejento, secrets: [s] }", "verify: none");
        assert_eq!(lowered(&full, &routes(&unsigned)).len(), 1);
        // A new unsigned prefix that shadows a signed prefix's paths.
        let signed_prefix = routes(
            "    - { name: vendors, path: /hooks/*, verify: { scheme: github, secrets: [s] } }\n",
        );
        let shadowed = routes("    - { name: vendors, path: /hooks/*, verify: { scheme: github, secrets: [s] } }\n    - { name: open, path: /hooks/open/*, verify: none }\n");
        let exposed = lowered(&signed_prefix, &shadowed);
        assert_eq!(
            exposed.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["/hooks/open/", "/hooks/open/*"]
        );
        // A removed signed route now unrouted (404) is held too; an unsigned one is not.
        let only_public = routes("    - { name: public, path: /public/*, verify: none }\n");
        let exposed = lowered(&full, &only_public);
        assert!(exposed
            .iter()
            .any(|e| e.path == "/hooks/rejento" && e.becomes.is_none()));
        assert!(lowered(
            &only_public,
            &routes("    - { name: x, path: /x, verify: none }\n")
        )
        .is_empty());
    }

    #[test]
    fn an_unsigned_catch_all_over_a_signed_path_is_named() {
        let risks = suffix_risks(&routes(FULL));
        assert_eq!(risks.len(), 1, "{risks:?}");
        assert!(risks[0].contains("route hooksall") && risks[0].contains("/hooks/rejento.json"));
        assert!(suffix_risks(&routes(&FULL.replace("/hooks/*", "/other/*"))).is_empty());
    }
}
