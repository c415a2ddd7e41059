//! The delivery history: every delivered message, with all its attempts and its payload
//! (so it can be sent again), kept for `outbound.history.retention` (and its payload for
//! `payload_retention`) within `max_bytes`, on every replica and across restarts. It
//! answers "did you send it?" by tenant, subscription, endpoint, event type, time, event
//! id and `Idempotency-Key`, newest first, a page at a time.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::queue::{DeliveryFilter, Record};
use super::seal::{ResealPage, Sealer};
use super::StoreError;

/// A delivered message as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// Without an inline secret, with every attempt.
    pub record: Record,
    pub delivered_ms: u64,
    /// The payload's size.
    pub payload_bytes: usize,
}

impl Delivered {
    /// The row as the store keeps it: JSON, its record's secrets and answers sealed
    /// (`store.encryption`; the payload is sealed on its own, as a body).
    pub fn encode(&self, sealer: &Sealer) -> Vec<u8> {
        let json = if sealer.enabled() {
            serde_json::to_vec(&Delivered {
                record: self.record.sealed(sealer),
                ..self.clone()
            })
        } else {
            serde_json::to_vec(self)
        };
        json.expect("a history row always serializes")
    }

    /// A stored row, opened.
    pub fn decode(sealer: &Sealer, bytes: &[u8]) -> Result<Self, StoreError> {
        Self::parse(bytes)?.opened(sealer)
    }

    /// A row as [`Delivered::parse`] read it, its sealed parts opened.
    pub fn opened(mut self, sealer: &Sealer) -> Result<Self, StoreError> {
        self.record = self.record.opened(sealer)?;
        Ok(self)
    }

    /// A stored row as it is kept (enough for its id, times and names).
    pub fn parse(bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("history row: {e}")))
    }

    /// Where it is in the history's order, for paging.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            delivered_ms: self.delivered_ms,
            id: self.record.id.clone(),
        }
    }

    /// The names it is found by: (index kind, value). Not its endpoint: there are few, so
    /// a list of one endpoint's reads the rows themselves, most of which match.
    pub fn index_keys(&self) -> Vec<(u8, &str)> {
        let record = &self.record;
        let mut keys = Vec::with_capacity(4);
        if let Some(event) = &record.event {
            keys.push((b's', event.subscription.as_str()));
            keys.push((b'e', event.event_id.as_str()));
            if let Some(tenant) = &event.tenant {
                keys.push((b't', tenant.as_str()));
            }
        }
        if let Some(key) = &record.idempotency_key {
            keys.push((b'k', key.as_str()));
        }
        keys
    }
}

/// A place in the history: rows delivered before it (or at the same millisecond with a
/// smaller id) come after it, newest first. As text, `<ms>-<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub delivered_ms: u64,
    pub id: String,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, id) = text.split_once('-')?;
        Some(Cursor {
            delivered_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.delivered_ms, self.id)
    }
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// `since` and `until` are on the delivery's acceptance, as for the queue.
    pub filter: DeliveryFilter,
    pub event_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Only rows after this place (the previous page's last).
    pub after: Option<Cursor>,
    pub limit: usize,
}

impl HistoryQuery {
    /// The most selective name the query gives, to scan its index instead of everything.
    pub fn index(&self) -> Option<(u8, &str)> {
        let f = &self.filter;
        [
            (b'e', self.event_id.as_deref()),
            (b'k', self.idempotency_key.as_deref()),
            (b's', f.subscription.as_deref()),
            (b't', f.tenant.as_deref()),
        ]
        .into_iter()
        .find_map(|(kind, value)| value.map(|v| (kind, v)))
    }

    pub fn matches(&self, row: &Delivered) -> bool {
        let record = &row.record;
        self.filter.matches(record)
            && self
                .event_id
                .as_ref()
                .is_none_or(|id| record.event.as_ref().is_some_and(|e| &e.event_id == id))
            && self
                .idempotency_key
                .as_ref()
                .is_none_or(|k| record.idempotency_key.as_ref() == Some(k))
            && self
                .after
                .as_ref()
                .is_none_or(|after| row.cursor() < *after)
    }
}

/// What a sweep removes: rows delivered before `before_ms`, payloads of rows delivered
/// before `payloads_before_ms`, and then the oldest rows while more than `max_bytes` are kept.
#[derive(Debug, Clone, Copy)]
pub struct Sweep {
    pub before_ms: u64,
    pub payloads_before_ms: u64,
    pub max_bytes: u64,
}

#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Keeps delivered messages, each with its payload (or none).
    async fn keep(&self, rows: Vec<(Delivered, Option<Vec<u8>>)>) -> Result<(), StoreError>;
    /// One delivered message and its payload, if still kept.
    async fn get(&self, id: &str) -> Result<Option<(Delivered, Option<Vec<u8>>)>, StoreError>;
    /// Newest first, at most `query.limit`.
    async fn list(&self, query: &HistoryQuery) -> Result<Vec<Delivered>, StoreError>;
    /// Removes what `sweep` says, a batch at a time; how many rows went.
    async fn sweep(&self, sweep: Sweep) -> Result<usize, StoreError>;
    /// Rewrites the rows (and payloads) sealed otherwise than the store seals now, a page
    /// of at most `limit` from `after` (the previous page's `next`).
    async fn reseal_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<ResealPage, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_order_newest_first_and_read_back() {
        let a = Cursor {
            delivered_ms: 5,
            id: "msg_b".into(),
        };
        let b = Cursor {
            delivered_ms: 5,
            id: "msg_a".into(),
        };
        assert!(b < a);
        assert_eq!(Cursor::parse(&a.to_string()), Some(a));
        assert_eq!(Cursor::parse("x-msg_a"), None);
        assert_eq!(Cursor::parse("5"), None);
    }
}
