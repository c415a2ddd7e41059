//! Stage 1 of the inbound path: which route does a request path belong to?

use std::sync::Arc;
use std::time::Duration;

use crate::config::RouteConfig;
use crate::inbound::dedupe::RouteDedupe;
use crate::inbound::handshake::RouteHandshake;
use crate::inbound::rate_limit::RouteLimiter;
use crate::inbound::verify::RouteVerifier;
use crate::store::{DedupeStore, Store};

/// A configured route with what it needs at request time.
pub struct Route {
    /// The route's name, as its metric label and in logs.
    pub name: &'static str,
    pub config: RouteConfig,
    pub verifier: RouteVerifier,
    pub dedupe: Option<RouteDedupe>,
    pub limiter: Option<RouteLimiter>,
    pub handshake: Option<RouteHandshake>,
}

/// Routes in match order ([`PathMatch::precedence`]).
pub struct RouteTable {
    routes: Vec<Route>,
}

/// What routes are built over: the store, and its dedupe ids (opened once per process: the
/// embedded ids' files are locked by their holder).
pub struct RouteState<'a> {
    pub store: &'a Store,
    pub dedupe: Option<Arc<dyn DedupeStore>>,
    /// A dedupe claim is held for at most this long.
    pub claim_lease: Duration,
}

impl RouteTable {
    /// Routes whose dedupe and rate limits keep their state in `state`. A route of
    /// `previous` (the table a config reload replaces) with the same name and limit keeps
    /// its limiter, and so what its senders have used of it.
    pub fn new(
        routes: &[RouteConfig],
        state: &RouteState,
        previous: Option<&RouteTable>,
    ) -> Result<Self, String> {
        let mut routes = routes
            .iter()
            .map(|config| {
                let earlier =
                    previous.and_then(|t| t.routes.iter().find(|r| r.name == config.name));
                // Route names live as long as the process: leaked once (per name), metric
                // labels and logs borrow them instead of allocating a copy per request.
                let name: &'static str = earlier
                    .map(|r| r.name)
                    .unwrap_or_else(|| Box::leak(config.name.clone().into_boxed_str()));
                let verifier =
                    RouteVerifier::new(&config.verify).map_err(|e| format!("route {name}: {e}"))?;
                let dedupe = match (&config.dedupe, &state.dedupe) {
                    (Some(dedupe), Some(store)) => Some(RouteDedupe::new(
                        name,
                        dedupe.clone(),
                        store.clone(),
                        state.claim_lease,
                        config.on_store_error,
                    )),
                    (Some(_), None) => return Err(format!("route {name}: no dedupe store")),
                    (None, _) => None,
                };
                let same_limit = |r: &&Route| {
                    format!("{:?}", r.config.rate_limit) == format!("{:?}", config.rate_limit)
                        && r.config.on_store_error == config.on_store_error
                };
                let limiter = match earlier.filter(same_limit).and_then(|r| r.limiter.clone()) {
                    Some(kept) => Some(kept),
                    None => config.rate_limit.as_ref().map(|limit| {
                        RouteLimiter::new(name, limit, config.on_store_error, state.store)
                    }),
                };
                Ok(Route {
                    name,
                    verifier,
                    dedupe,
                    limiter,
                    handshake: RouteHandshake::new(config),
                    config: config.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        routes.sort_by_key(|r| r.config.path.precedence());
        Ok(RouteTable { routes })
    }

    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.config.path.matches(path))
    }

    pub fn by_name(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }
}

impl Route {
    /// The header a request names its delivery id in: the dedupe's, or the scheme's.
    pub fn id_header(&self) -> Option<&str> {
        match self.config.dedupe.as_ref().map(|d| &d.id) {
            Some(crate::config::IdSource::Header(name)) => Some(name),
            _ => self.verifier.id_header(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PathMatch, Verify};

    fn route(name: &str, path: PathMatch) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            path,
            max_body: None,
            verify: Verify::None,
            dedupe: None,
            rate_limit: None,
            on_store_error: crate::config::OnStoreError::FailClosed,
            allow_underscore_headers: false,
            handshake: None,
            verify_token: None,
            deliver: crate::config::Deliver::Proxy,
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let (store, _dir) = crate::store::test_store(10);
        let state = RouteState {
            store: &store,
            dedupe: None,
            claim_lease: Duration::from_secs(30),
        };
        let table = RouteTable::new(
            &[
                route("all", PathMatch::Prefix("/hooks/".into())),
                route("vendors", PathMatch::Prefix("/hooks/vendors/".into())),
                route("github", PathMatch::Exact("/hooks/github".into())),
            ],
            &state,
            None,
        )
        .unwrap();
        let name = |p: &str| table.find(p).map(|r| r.config.name.clone());
        assert_eq!(name("/hooks/github").as_deref(), Some("github"));
        assert_eq!(name("/hooks/vendors/x").as_deref(), Some("vendors"));
        assert_eq!(name("/hooks/other").as_deref(), Some("all"));
        assert_eq!(name("/other"), None);
    }
}
