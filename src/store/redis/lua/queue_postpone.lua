if redis.call('HGET', KEYS[2], 'state') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[2], 'due', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
