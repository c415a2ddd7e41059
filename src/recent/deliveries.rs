//! The last deliveries that succeeded, kept in memory: a delivered message leaves the
//! queue, and the console (and `GET /admin/deliveries?state=delivered`) can still show
//! it with its attempts. In this process only: with replicas, the one that delivered it.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::store::queue::Record;

/// Delivered messages kept, at most (their bodies are not).
const KEPT: usize = 1000;

#[derive(Default)]
pub struct RecentDeliveries {
    list: Mutex<VecDeque<(Record, u64)>>,
}

impl RecentDeliveries {
    /// `record` (with its last attempt) was delivered at `at_ms`.
    pub fn delivered(&self, record: Record, at_ms: u64) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == KEPT {
            list.pop_front();
        }
        list.push_back((record.redacted(), at_ms));
    }

    fn view((record, at_ms): &(Record, u64)) -> Value {
        let mut value = json!(record);
        value["state"] = json!("delivered");
        value["delivered_ms"] = json!(at_ms);
        value
    }

    pub fn get(&self, id: &str) -> Option<Value> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().rev().find(|(r, _)| r.id == id).map(Self::view)
    }

    /// Newest first, those `wanted` says.
    pub fn list(&self, wanted: impl Fn(&Record) -> bool) -> Vec<Value> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .rev()
            .filter(|(r, _)| wanted(r))
            .map(Self::view)
            .collect()
    }
}
