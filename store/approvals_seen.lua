-- Record one delivery key unless it was seen within its ttl.
-- KEYS[1] zset of delivery keys, scored by their expiry (ms, Redis's clock)
-- ARGV[1] the delivery key   ARGV[2] ttl ms
-- Returns 1 the first time within ttl, else 0. One key for every delivery
-- (not one key each), so a flood of commands adds members, never keys; the
-- expired members go on every call, so the set holds one ttl's deliveries.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[2])
local added = redis.call('ZADD', KEYS[1], 'NX', now + ttl, ARGV[1])
if added == 1 and redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return added
