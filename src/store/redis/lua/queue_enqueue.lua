if ARGV[1] ~= '0' then
  local earlier = redis.call('GET', KEYS[3])
  if earlier then return earlier end
  redis.call('SET', KEYS[3], ARGV[2], 'PXAT', ARGV[1])
end
local a, k = 4, 5
while a < #ARGV do
  local id, state, due, created = ARGV[a], ARGV[a + 2], ARGV[a + 3], ARGV[a + 5]
  local attempts = tonumber(ARGV[a + 9])
  -- Each message's own (sealed) body after its attempts, or the one shared by all.
  local body = ARGV[a + 10 + attempts]
  if body == '' then body = ARGV[3] end
  redis.call('HSET', KEYS[k], 'meta', ARGV[a + 1], 'state', state, 'due', due, 'round', ARGV[a + 4], 'body', body)
  for i = 1, attempts do redis.call('RPUSH', KEYS[k + 1], ARGV[a + 9 + i]) end
  if state == 'pending' then
    -- In a line (ARGV[a + 8] names its list): due only at its head.
    local line = ARGV[a + 8]
    if line == '' or redis.call('RPUSH', line, id) == 1 then
      redis.call('ZADD', KEYS[1], due, id)
    end
    redis.call('ZADD', KEYS[k + 2], created, id)
  end
  redis.call('ZADD', KEYS[2], created, id)
  redis.call('HINCRBY', KEYS[4], ARGV[a + 6] .. '\t' .. ARGV[a + 7], 1)
  a = a + 11 + attempts
  k = k + 3
end
return ''
