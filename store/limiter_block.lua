-- Hold a budget off until now + delay (MDE 429 Retry-After), never shortening
-- an existing block.
-- KEYS[1] blocked, KEYS[2] seq (for the monotonic "last" time)
-- ARGV: delay_us, ttl_margin_ms, now_us (test-only override; '' in production)
-- Returns the blocked-until time in µs.
local blocked, seq = KEYS[1], KEYS[2]
local delay, margin = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local last = tonumber(redis.call('HGET', seq, 'last'))
if last and last > now then now = last end
local untilus = now + delay
local cur = tonumber(redis.call('GET', blocked))
if cur and cur >= untilus then return cur end
redis.call('SET', blocked, string.format('%.0f', untilus), 'PX', math.floor(delay / 1000) + margin)
return untilus
