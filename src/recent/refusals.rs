//! The last inbound refusals, kept in memory for the console and `GET /admin/refusals`:
//! when, which route, why, from where, the delivery id the request claimed, and which
//! headers it carried (names only). Never a body, a header's value (other than the id),
//! a signature or a secret. It answers "the provider says it sent it".

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use pingora::http::RequestHeader;
use serde::Serialize;

/// The longest claimed delivery id kept (the sender chose it).
const MAX_ID: usize = 128;
/// Most header names kept per refusal.
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub route: &'static str,
    /// The error code hookgate answered with (`invalid_signature`, `rate_limited`...).
    pub reason: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// As the request claimed it: not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The names of the headers the request carried, lowercase.
    pub headers: Vec<String>,
}

impl Refusal {
    /// The header names of `header`, and its id from `id_header` (cut to a bounded length).
    pub fn describe(
        header: &RequestHeader,
        id_header: Option<&str>,
    ) -> (Vec<String>, Option<String>) {
        let mut names: Vec<String> = header
            .headers
            .keys()
            .take(MAX_HEADERS)
            .map(|n| n.as_str().to_string())
            .collect();
        names.dedup();
        let id = id_header
            .and_then(|name| header.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mut end = v.len().min(MAX_ID);
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                v[..end].to_string()
            });
        (names, id)
    }
}

pub struct RecentRefusals {
    capacity: usize,
    list: Mutex<VecDeque<Refusal>>,
}

impl RecentRefusals {
    /// Keeps the last `capacity` refusals (0: none).
    pub fn new(capacity: usize) -> Self {
        RecentRefusals {
            capacity,
            list: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn record(&self, refusal: Refusal) {
        if self.capacity == 0 {
            return;
        }
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == self.capacity {
            list.pop_front();
        }
        list.push_back(refusal);
    }

    /// Newest first, at most `limit`, of `route` and `reason` when given.
    pub fn list(&self, route: Option<&str>, reason: Option<&str>, limit: usize) -> Vec<Refusal> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .rev()
            .filter(|r| route.is_none_or(|route| r.route == route))
            .filter(|r| reason.is_none_or(|reason| r.reason == reason))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(n: u64, route: &'static str, reason: &'static str) -> Refusal {
        Refusal {
            at_ms: n,
            route,
            reason,
            status: 401,
            source: None,
            delivery_id: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn keeps_the_last_ones_newest_first_and_filters() {
        let recent = RecentRefusals::new(3);
        for (n, route, reason) in [(1, "a", "x"), (2, "b", "x"), (3, "a", "y"), (4, "a", "x")] {
            recent.record(refusal(n, route, reason));
        }
        let at = |list: Vec<Refusal>| list.iter().map(|r| r.at_ms).collect::<Vec<_>>();
        assert_eq!(at(recent.list(None, None, 10)), [4, 3, 2]);
        assert_eq!(at(recent.list(Some("a"), None, 10)), [4, 3]);
        assert_eq!(at(recent.list(Some("a"), Some("x"), 10)), [4]);
        assert_eq!(at(recent.list(None, None, 1)), [4]);
        let none = RecentRefusals::new(0);
        none.record(refusal(1, "a", "x"));
        assert!(none.list(None, None, 10).is_empty());
    }

    #[test]
    fn keeps_header_names_and_a_bounded_id_only() {
        let mut header = RequestHeader::build("POST", b"/", None).unwrap();
        header
            .insert_header("X-Signature", "sha256=secret-looking")
            .unwrap();
        header.insert_header("Webhook-Id", "m".repeat(300)).unwrap();
        let (names, id) = Refusal::describe(&header, Some("webhook-id"));
        assert_eq!(names, ["x-signature", "webhook-id"]);
        assert_eq!(id.unwrap(), "m".repeat(MAX_ID));
        assert!(!format!("{names:?}").contains("secret-looking"));
    }
}
