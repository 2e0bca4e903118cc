-- Hold a budget off until now + delay (MDE 429 Retry-After), never shortening
-- an existing block.
-- KEYS[1] seq (HASH: blocked = blocked-until µs; last = monotonic time)
-- ARGV: delay_us, ttl_margin_ms, now_us (test-only override; '' in production)
-- Returns the blocked-until time in µs.
local seq = KEYS[1]
local delay, margin = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local h = redis.call('HMGET', seq, 'last', 'blocked')
local last = tonumber(h[1])
if last and last > now then now = last end
local untilus = now + delay
local cur = tonumber(h[2])
if cur and cur >= untilus then return cur end
redis.call('HSET', seq, 'blocked', untilus)
-- The hash must outlive the block. Only ever lengthen its TTL: it also
-- holds the log's counter and clock, kept by admits until their newest slot
-- has left the hour window. PTTL is -1 for a hash just created by HSET.
local ttl = math.floor(delay / 1000) + margin
if redis.call('PTTL', seq) < ttl then redis.call('PEXPIRE', seq, ttl) end
return untilus
