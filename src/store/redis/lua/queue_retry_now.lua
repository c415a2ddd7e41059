local f = redis.call('HMGET', KEYS[2], 'state', 'round', 'meta')
if not f[3] then return 0 end
local meta = cjson.decode(f[3])
redis.call('HINCRBY', KEYS[3], meta.endpoint .. '\t' .. bucket(f[1], f[2]), -1)
redis.call('HINCRBY', KEYS[3], meta.endpoint .. '\tpending', 1)
redis.call('ZADD', ARGV[3] .. 'w:' .. meta.endpoint, string.format('%.0f', meta.created_ms), ARGV[2])
redis.call('HSET', KEYS[2], 'state', 'pending', 'round', 0, 'due', ARGV[1])
if heads_line(ARGV[3], meta, ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) end
return 1
