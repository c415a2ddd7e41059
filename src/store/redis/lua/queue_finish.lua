local f = redis.call('HMGET', KEYS[3], 'state', 'due', 'round', 'meta')
if f[1] ~= 'pending' or f[2] ~= ARGV[1] then return 0 end
local meta = cjson.decode(f[4])
local endpoint = meta.endpoint
redis.call('HINCRBY', KEYS[5], endpoint .. '\t' .. bucket(f[1], f[3]), -1)
if ARGV[3] == 'delivered' then
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('ZREM', KEYS[1], ARGV[5])
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('ZREM', ARGV[6] .. 'w:' .. endpoint, ARGV[5])
  leave_line(KEYS[1], ARGV[6], meta, ARGV[5])
  return 1
end
redis.call('RPUSH', KEYS[4], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'round', 1)
if ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[3], 'due', ARGV[4])
  if heads_line(ARGV[6], meta, ARGV[5]) then
    redis.call('ZADD', KEYS[1], ARGV[4], ARGV[5])
  else
    redis.call('ZREM', KEYS[1], ARGV[5])
  end
  redis.call('HINCRBY', KEYS[5], endpoint .. '\tscheduled', 1)
else
  redis.call('HSET', KEYS[3], 'state', 'dead')
  redis.call('ZREM', KEYS[1], ARGV[5])
  redis.call('ZREM', ARGV[6] .. 'w:' .. endpoint, ARGV[5])
  leave_line(KEYS[1], ARGV[6], meta, ARGV[5])
  redis.call('HINCRBY', KEYS[5], endpoint .. '\tdead', 1)
end
return 1
