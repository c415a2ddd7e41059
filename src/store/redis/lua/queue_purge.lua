local f = redis.call('HMGET', KEYS[3], 'state', 'round', 'meta')
if f[1] ~= ARGV[1] then return 0 end
local meta = cjson.decode(f[3])
local endpoint = meta.endpoint
redis.call('HINCRBY', KEYS[5], endpoint .. '\t' .. bucket(f[1], f[2]), -1)
redis.call('ZREM', ARGV[3] .. 'w:' .. endpoint, ARGV[2])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if f[1] == 'pending' then leave_line(KEYS[1], ARGV[3], meta, ARGV[2]) end
return 1
