//! The Redis queue's Lua scripts (`lua/queue_*.lua`), each run atomically on one
//! partition's slot. `queue_bucket.lua` is the depth bucket function several share.

use redis::Script;

/// KEYS: due, all, idempotency key, counts, then per message: its hash, its attempts, its
/// endpoint's waiting set. ARGV: key expiry (0: none), receipt, body, then per message:
/// id, meta, state, due, round, created, endpoint, bucket, its line's list (`order`; empty
/// for none), the number of its attempts, and those attempts. Every message is stored, or none (a held key).
const ENQUEUE: &str = include_str!("lua/queue_enqueue.lua");

/// ARGV: now, lease end, limit, message key prefix.
const CLAIM: &str = include_str!("lua/queue_claim.lua");

/// KEYS: due, all, message, attempts, counts. ARGV: lease end, attempt, next (delivered |
/// retry | dead), next due, id, key prefix.
const FINISH: &str = concat!(
    include_str!("lua/queue_bucket.lua"),
    include_str!("lua/queue_order.lua"),
    include_str!("lua/queue_finish.lua")
);

/// KEYS: `due`, only so a cluster routes the script to the queue's slot. ARGV: message
/// key prefix, then ids; the records without bodies.
const READ: &str = include_str!("lua/queue_read.lua");

/// KEYS: due, message, counts. ARGV: now, id, key prefix.
const RETRY_NOW: &str = concat!(
    include_str!("lua/queue_bucket.lua"),
    include_str!("lua/queue_order.lua"),
    include_str!("lua/queue_retry_now.lua")
);

/// KEYS: due, all, message, attempts, counts. ARGV: state, id, key prefix.
const PURGE: &str = concat!(
    include_str!("lua/queue_bucket.lua"),
    include_str!("lua/queue_order.lua"),
    include_str!("lua/queue_purge.lua")
);

/// KEYS: counts, the marker that they are complete, all. ARGV: key prefix. Each
/// endpoint's counts by bucket and oldest waiting accept time; on the first call after an
/// upgrade from a queue without counts, they are built from the messages once (atomically,
/// so increments made meanwhile are not counted twice).
const DEPTH: &str = concat!(
    include_str!("lua/queue_bucket.lua"),
    include_str!("lua/queue_depth.lua")
);

/// ARGV: due, id.
const POSTPONE: &str = include_str!("lua/queue_postpone.lua");

pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) claim: Script,
    pub(super) finish: Script,
    pub(super) read: Script,
    pub(super) retry_now: Script,
    pub(super) purge: Script,
    pub(super) postpone: Script,
    pub(super) depth: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            enqueue: Script::new(ENQUEUE),
            claim: Script::new(CLAIM),
            finish: Script::new(FINISH),
            read: Script::new(READ),
            retry_now: Script::new(RETRY_NOW),
            purge: Script::new(PURGE),
            postpone: Script::new(POSTPONE),
            depth: Script::new(DEPTH),
        }
    }
}
