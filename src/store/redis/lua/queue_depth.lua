if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    local f = redis.call('HMGET', ARGV[1] .. 'm:' .. id, 'state', 'round', 'meta')
    if f[3] then
      local meta = cjson.decode(f[3])
      redis.call('HINCRBY', KEYS[1], meta.endpoint .. '\t' .. bucket(f[1], f[2]), 1)
      if f[1] == 'pending' then
        redis.call('ZADD', ARGV[1] .. 'w:' .. meta.endpoint, string.format('%.0f', meta.created_ms), id)
      end
    end
  end
  redis.call('SET', KEYS[2], '1')
end
local out = {}
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  local endpoint, bucket = string.match(counts[i], '^(.*)\t(.*)$')
  local oldest = redis.call('ZRANGE', ARGV[1] .. 'w:' .. endpoint, 0, 0, 'WITHSCORES')
  table.insert(out, {endpoint, bucket, counts[i + 1], oldest[2] or ''})
end
return out
