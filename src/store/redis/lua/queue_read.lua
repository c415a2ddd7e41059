local out = {}
for i = 2, #ARGV do
  local m = ARGV[1] .. 'm:' .. ARGV[i]
  local f = redis.call('HMGET', m, 'meta', 'state', 'due', 'round')
  if f[1] then
    table.insert(out, {f[1], f[2], f[3], f[4], redis.call('LRANGE', ARGV[1] .. 'a:' .. ARGV[i], 0, -1)})
  end
end
return out
