//! Stage 1 of the inbound path: which route does a request path belong to?

use std::sync::Arc;

use crate::config::{PathMatch, RouteConfig};

/// Routes in match order: exact paths first, then prefixes from longest to shortest,
/// so `/hooks/github` wins over `/hooks/*` whatever the order in the file.
pub struct RouteTable {
    routes: Vec<Arc<RouteConfig>>,
}

impl RouteTable {
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut routes: Vec<Arc<RouteConfig>> = routes.iter().cloned().map(Arc::new).collect();
        routes.sort_by_key(|r| match &r.path {
            PathMatch::Exact(_) => (0, 0),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
        });
        RouteTable { routes }
    }

    pub fn find(&self, path: &str) -> Option<&Arc<RouteConfig>> {
        self.routes.iter().find(|r| r.path.matches(path))
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
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let table = RouteTable::new(&[
            route("all", PathMatch::Prefix("/hooks/".into())),
            route("vendors", PathMatch::Prefix("/hooks/vendors/".into())),
            route("github", PathMatch::Exact("/hooks/github".into())),
        ]);
        let name = |p: &str| table.find(p).map(|r| r.name.clone());
        assert_eq!(name("/hooks/github").as_deref(), Some("github"));
        assert_eq!(name("/hooks/vendors/x").as_deref(), Some("vendors"));
        assert_eq!(name("/hooks/other").as_deref(), Some("all"));
        assert_eq!(name("/other"), None);
    }
}
