local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local m = ARGV[4] .. 'm:' .. id
  if redis.call('EXISTS', m) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', m, 'due', ARGV[2])
    local f = redis.call('HMGET', m, 'meta', 'state', 'round', 'body')
    table.insert(out, {f[1], f[2], f[3], f[4], redis.call('LRANGE', ARGV[4] .. 'a:' .. id, 0, -1)})
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
