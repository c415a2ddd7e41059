//! Replacing stored values only where they are still what was read: how a reseal pass
//! (`store.encryption`) rewrites values without a lock, and without undoing a change made
//! meanwhile. One script per record, so its keys share a slot on a cluster.

use redis::Script;

use super::RedisStore;
use crate::store::StoreError;

/// KEYS: the keys holding the values. ARGV per key: kind (`s` a string, `h` a hash field,
/// `l` a list item), the field or index (`` for a string), the value read, the new value.
/// Each value still as read is replaced (a string keeps its expiry). Answers how many were,
/// and how many bytes they grew by.
const REPLACE: &str = r"
local replaced, grown = 0, 0
for i = 1, #KEYS do
  local a = (i - 1) * 4
  local kind, at, old, new = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local now
  if kind == 's' then now = redis.call('GET', KEYS[i])
  elseif kind == 'h' then now = redis.call('HGET', KEYS[i], at)
  else now = redis.call('LINDEX', KEYS[i], tonumber(at)) end
  if now == old then
    if kind == 's' then redis.call('SET', KEYS[i], new, 'KEEPTTL')
    elseif kind == 'h' then redis.call('HSET', KEYS[i], at, new)
    else redis.call('LSET', KEYS[i], tonumber(at), new) end
    replaced = replaced + 1
    grown = grown + #new - #old
  end
end
return {replaced, grown}
";

/// Where a value is kept.
pub(super) enum Place {
    String(String),
    Field(String, &'static str),
    Item(String, usize),
}

/// One value to replace: where, what was read, and what it becomes.
pub(super) struct Replacement {
    pub(super) place: Place,
    pub(super) read: Vec<u8>,
    pub(super) new: Vec<u8>,
}

pub(super) struct Replacer(Script);

impl Replacer {
    pub(super) fn new() -> Self {
        Replacer(Script::new(REPLACE))
    }

    /// Replaces each value still as it was read, atomically; how many were, and the bytes
    /// they grew by. Every key must be in one slot.
    pub(super) async fn replace(
        &self,
        store: &RedisStore,
        replacements: &[Replacement],
    ) -> Result<(u64, i64), StoreError> {
        if replacements.is_empty() {
            return Ok((0, 0));
        }
        store
            .run(|mut c| async move {
                let mut call = self.0.prepare_invoke();
                for r in replacements {
                    let (key, kind, at) = match &r.place {
                        Place::String(key) => (key, "s", String::new()),
                        Place::Field(key, field) => (key, "h", field.to_string()),
                        Place::Item(key, index) => (key, "l", index.to_string()),
                    };
                    call.key(key)
                        .arg(kind)
                        .arg(at)
                        .arg(r.read.as_slice())
                        .arg(r.new.as_slice());
                }
                call.invoke_async(&mut c).await
            })
            .await
    }
}
