-- KEYS[1] lease key; ARGV[1] holder; ARGV[2] ttl in ms.
-- Takes a free lease or extends the holder's own; 0 when another holds it.
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
