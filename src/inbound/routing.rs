//! Stage 1 of the inbound path: which route does a request path belong to?

use std::time::Duration;

use crate::config::{PathMatch, RouteConfig};
use crate::inbound::dedupe::RouteDedupe;
use crate::inbound::rate_limit::RouteLimiter;
use crate::inbound::verify::RouteVerifier;
use crate::store::Store;

/// A configured route with what it needs at request time.
pub struct Route {
    /// The route's name, as its metric label and in logs.
    pub name: &'static str,
    pub config: RouteConfig,
    pub verifier: RouteVerifier,
    pub dedupe: Option<RouteDedupe>,
    pub limiter: Option<RouteLimiter>,
}

/// Routes in match order: exact paths first, then prefixes from longest to shortest,
/// so `/hooks/github` wins over `/hooks/*` whatever the order in the file.
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Routes whose dedupe and rate limits keep their state in `store`; a dedupe claim is
    /// held for at most `claim_lease`.
    pub fn new(
        routes: &[RouteConfig],
        store: &Store,
        claim_lease: Duration,
    ) -> Result<Self, String> {
        let deduping = routes.iter().filter(|r| r.dedupe.is_some()).count();
        let dedupe_store = match deduping {
            0 => None,
            n => Some(store.dedupe(n)?),
        };
        let mut routes = routes
            .iter()
            .map(|config| {
                // Route names live as long as the process: leaked once, metric labels and
                // logs borrow them instead of allocating a copy per request.
                let name: &'static str = Box::leak(config.name.clone().into_boxed_str());
                let verifier =
                    RouteVerifier::new(&config.verify).map_err(|e| format!("route {name}: {e}"))?;
                let dedupe = config.dedupe.clone().zip(dedupe_store.clone());
                Ok(Route {
                    name,
                    verifier,
                    dedupe: dedupe.map(|(dedupe, store)| {
                        RouteDedupe::new(name, dedupe, store, claim_lease, config.on_store_error)
                    }),
                    limiter: config
                        .rate_limit
                        .as_ref()
                        .map(|limit| RouteLimiter::new(name, limit, config.on_store_error, store)),
                    config: config.clone(),
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
            Duration::from_secs(30),
        )
        .unwrap();
        let name = |p: &str| table.find(p).map(|r| r.config.name.clone());
        assert_eq!(name("/hooks/github").as_deref(), Some("github"));
        assert_eq!(name("/hooks/vendors/x").as_deref(), Some("vendors"));
        assert_eq!(name("/hooks/other").as_deref(), Some("all"));
        assert_eq!(name("/other"), None);
    }
}
