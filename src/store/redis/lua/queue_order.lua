-- Lines of ordered messages (`order` in a record's meta): a list per key, `o:<key>`, of the
-- pending ids in the order they were stored. Only a line's head is in `due`.
local function line_of(prefix, meta)
  if type(meta.order) ~= 'table' then return nil end
  return prefix .. 'o:' .. meta.order.key
end

-- Takes `id` out of its line; when it was the head, the next one falls due at its stored
-- due time.
local function leave_line(due, prefix, meta, id)
  local line = line_of(prefix, meta)
  if not line then return end
  local head = redis.call('LINDEX', line, 0)
  redis.call('LREM', line, 1, id)
  if head == id then
    local next = redis.call('LINDEX', line, 0)
    if next then
      local next_due = redis.call('HGET', prefix .. 'm:' .. next, 'due')
      if next_due then redis.call('ZADD', due, next_due, next) end
    end
  end
end

-- Whether `id` heads its line (or has none); a message not in its line (a replayed dead
-- letter) joins its end.
local function heads_line(prefix, meta, id)
  local line = line_of(prefix, meta)
  if not line then return true end
  if not redis.call('LPOS', line, id) then redis.call('RPUSH', line, id) end
  return redis.call('LINDEX', line, 0) == id
end
