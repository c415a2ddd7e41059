//! The last deliveries that succeeded, kept in memory: a delivered message leaves the
//! queue, and the console (and `GET /admin/deliveries?state=delivered`) can still show
//! it with its attempts and the start of its payload. In this process only: with replicas,
//! the one that delivered it.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::store::queue::Record;

/// Delivered messages kept, at most.
const KEPT: usize = 1000;

/// The most of a payload the admin API shows (and keeps of a delivered one): 16 MiB for
/// all the delivered messages kept.
pub const PAYLOAD_SHOWN: usize = 16 * 1024;

/// A payload as the admin API shows it: its first [`PAYLOAD_SHOWN`] bytes as text, and
/// its whole size.
pub fn payload_fields(value: &mut Value, start: &[u8], total_bytes: usize) {
    let start = &start[..start.len().min(PAYLOAD_SHOWN)];
    value["payload"] = json!(String::from_utf8_lossy(start));
    value["payload_bytes"] = json!(total_bytes);
    value["payload_truncated"] = json!(total_bytes > start.len());
}

struct Delivered {
    record: Record,
    at_ms: u64,
    payload_start: Vec<u8>,
    payload_bytes: usize,
}

#[derive(Default)]
pub struct RecentDeliveries {
    list: Mutex<VecDeque<Delivered>>,
}

impl RecentDeliveries {
    /// `record` (with its last attempt) was delivered at `at_ms` with `body`.
    pub fn delivered(&self, record: Record, body: &[u8], at_ms: u64) {
        let delivered = Delivered {
            record: record.redacted(),
            at_ms,
            payload_start: body[..body.len().min(PAYLOAD_SHOWN)].to_vec(),
            payload_bytes: body.len(),
        };
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == KEPT {
            list.pop_front();
        }
        list.push_back(delivered);
    }

    fn view(delivered: &Delivered) -> Value {
        let mut value = json!(delivered.record);
        value["state"] = json!("delivered");
        value["delivered_ms"] = json!(delivered.at_ms);
        value
    }

    /// One delivered message, with the start of its payload.
    pub fn get(&self, id: &str) -> Option<Value> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().rev().find(|d| d.record.id == id).map(|d| {
            let mut value = Self::view(d);
            payload_fields(&mut value, &d.payload_start, d.payload_bytes);
            value
        })
    }

    /// Newest first, those `wanted` says.
    pub fn list(&self, wanted: impl Fn(&Record) -> bool) -> Vec<Value> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .rev()
            .filter(|d| wanted(&d.record))
            .map(Self::view)
            .collect()
    }
}
