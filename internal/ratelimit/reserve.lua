-- Reserve one call in a two-window sliding log (see store/README.md).
-- KEYS[1] log (ZSET: member "<slot µs>-<n>", score slot µs)
-- KEYS[2] seq (HASH: n = member counter, last = highest server time seen by
--         an admit, newest = highest slot admitted, blocked = blocked-until;
--         all µs)
-- ARGV: limit_minute, window_minute_us, limit_hour, window_hour_us,
--       max_wait_us, ttl_margin_ms, now_us (test-only override; '' in production)
-- Returns {allowed 0|1, slot_us, now_us, minute, hour, member}. A refusal
-- writes nothing; slot_us is then the exact earliest admission time.
--
-- Each redis.call costs ~1-2 µs, so the script makes as few as it can:
-- refusal 7 (TIME, HMGET, ZCARD, 2 rank lookups when both windows are full,
-- 2 ZCOUNT), admit 9 to 12. Numbers are passed to redis.call as numbers:
-- Redis formats them with %.17g, exact for integer µs (tostring is not).
local log, seq = KEYS[1], KEYS[2]
local lm, tm = tonumber(ARGV[1]), tonumber(ARGV[2])
local lh, th = tonumber(ARGV[3]), tonumber(ARGV[4])
local maxwait, margin = tonumber(ARGV[5]), tonumber(ARGV[6])

local now
if ARGV[7] ~= '' then
  now = tonumber(ARGV[7])
else
  -- Redis < 5 replicates scripts verbatim, which forbids writes after TIME.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local h = redis.call('HMGET', seq, 'last', 'blocked', 'n', 'newest')
-- Time never runs backwards (failover to a host with a slower clock).
local last = tonumber(h[1])
if last and last > now then now = last end

-- Entries are sorted by slot. Ranks count every entry, future reservations
-- included, so once slot >= score[c-L] + T at most L-1 entries lie in
-- (slot-T, +inf): every window holding the new entry stays within L, wherever
-- it is inserted (after a Release it may land before a later reservation).
local total = redis.call('ZCARD', log)
local slot = now
local function retry(limit, window)
  if total < limit then return end
  local e = redis.call('ZRANGE', log, total - limit, total - limit, 'WITHSCORES')
  local t = tonumber(e[2]) + window
  if t > slot then slot = t end
end
retry(lm, tm)
retry(lh, th)
-- A blocked-until in the past is harmless, so it needs no TTL of its own.
local b = tonumber(h[2])
if b and b > slot then slot = b end

-- Scores are integer µs: "> x" is ">= x+1", no '(' string to format.
if slot > now + maxwait then
  return {0, slot, now, redis.call('ZCOUNT', log, now - tm + 1, '+inf'),
    redis.call('ZCOUNT', log, now - th + 1, '+inf'), ''}
end

-- Entries at or before now-th can no longer fill any window.
local removed = redis.call('ZREMRANGEBYSCORE', log, '-inf', now - th)
local n = (tonumber(h[3]) or 0) + 1
local member = string.format('%.0f-%d', slot, n)
redis.call('ZADD', log, slot, member)
-- Keep the log until its newest entry has left the hour window. newest may
-- be stale-high after a Release, which only lengthens the TTL. A block
-- always ends at or before newest (slot >= blocked), so seq outlives it.
local newest = tonumber(h[4])
if not newest or newest < slot then newest = slot end
redis.call('HSET', seq, 'n', n, 'last', now, 'newest', newest)
local ttl = math.floor((newest - now + th) / 1000) + margin
redis.call('PEXPIRE', log, ttl)
redis.call('PEXPIRE', seq, ttl)
local cm = redis.call('ZCOUNT', log, slot - tm + 1, '+inf')
local ch
if slot == now then
  -- After the trim every remaining entry is inside (now-th, +inf).
  ch = total - removed + 1
else
  ch = redis.call('ZCOUNT', log, slot - th + 1, '+inf')
end
return {1, slot, now, cm, ch, member}
