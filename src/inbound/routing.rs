//! Stage 1 of the inbound path: which route does a request path belong to?

use crate::config::{PathMatch, RouteConfig};
use crate::inbound::rate_limit::RouteLimiter;
use crate::inbound::verify::RouteVerifier;
use crate::store::Store;

/// A configured route with what it needs at request time.
pub struct Route {
    pub config: RouteConfig,
    pub verifier: RouteVerifier,
    pub limiter: Option<RouteLimiter>,
}

/// Routes in match order: exact paths first, then prefixes from longest to shortest,
/// so `/hooks/github` wins over `/hooks/*` whatever the order in the file.
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Routes whose rate limits come from `store`.
    pub fn new(routes: &[RouteConfig], store: &Store) -> Result<Self, String> {
        let mut routes = routes
            .iter()
            .map(|config| {
                let verifier = RouteVerifier::new(&config.verify)
                    .map_err(|e| format!("route {}: {e}", config.name))?;
                Ok(Route {
                    config: config.clone(),
                    verifier,
                    limiter: config.rate_limit.as_ref().map(|limit| {
                        RouteLimiter::new(&config.name, limit, config.on_store_error, store)
                    }),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        routes.sort_by_key(|r| match &r.config.path {
            PathMatch::Exact(_) => (0, 0),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
        });
        Ok(RouteTable { routes })
    }

    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.config.path.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Verify;

    fn route(name: &str, path: PathMatch) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            path,
            max_body: None,
            verify: Verify::None,
            dedupe: None,
            rate_limit: None,
            on_store_error: crate::config::OnStoreError::FailClosed,
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&crate::config::StoreConfig::Embedded {
            path: dir.path().to_path_buf(),
            max_ids: 10,
        })
        .unwrap();
        let table = RouteTable::new(
            &[
                route("all", PathMatch::Prefix("/hooks/".into())),
                route("vendors", PathMatch::Prefix("/hooks/vendors/".into())),
                route("github", PathMatch::Exact("/hooks/github".into())),
            ],
            &store,
        )
        .unwrap();
        let name = |p: &str| table.find(p).map(|r| r.config.name.clone());
        assert_eq!(name("/hooks/github").as_deref(), Some("github"));
        assert_eq!(name("/hooks/vendors/x").as_deref(), Some("vendors"));
        assert_eq!(name("/hooks/other").as_deref(), Some("all"));
        assert_eq!(name("/other"), None);
    }
}
