-- Reserve one call in a two-window sliding log (see store/README.md).
-- KEYS[1] log (ZSET: member "<slot µs>-<seq>", score slot µs)
-- KEYS[2] seq (HASH: n = member counter, last = highest server time seen by an admit, µs)
-- KEYS[3] blocked (STRING: blocked-until µs, set by Block)
-- ARGV: limit_minute, window_minute_us, limit_hour, window_hour_us,
--       max_wait_us, ttl_margin_ms, now_us (test-only override; '' in production)
-- Returns {allowed 0|1, slot_us, now_us, minute, hour, member}. A refusal
-- writes nothing; slot_us is then the exact earliest admission time.
local log, seq, blocked = KEYS[1], KEYS[2], KEYS[3]
local lm, tm = tonumber(ARGV[1]), tonumber(ARGV[2])
local lh, th = tonumber(ARGV[3]), tonumber(ARGV[4])
local maxwait, margin = tonumber(ARGV[5]), tonumber(ARGV[6])

local function fmt(x) return string.format('%.0f', x) end

local now
if ARGV[7] ~= '' then
  now = tonumber(ARGV[7])
else
  -- Redis < 5 replicates scripts verbatim, which forbids writes after TIME.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- Time never runs backwards (failover to a host with a slower clock).
local last = tonumber(redis.call('HGET', seq, 'last'))
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
local b = tonumber(redis.call('GET', blocked))
if b and b > slot then slot = b end

if slot > now + maxwait then
  local cm = redis.call('ZCOUNT', log, '(' .. fmt(now - tm), '+inf')
  local ch = redis.call('ZCOUNT', log, '(' .. fmt(now - th), '+inf')
  return {0, slot, now, cm, ch, ''}
end

-- Entries at or before now-th can no longer fill any window.
redis.call('ZREMRANGEBYSCORE', log, '-inf', fmt(now - th))
local n = redis.call('HINCRBY', seq, 'n', 1)
local member = fmt(slot) .. '-' .. n
redis.call('ZADD', log, fmt(slot), member)
redis.call('HSET', seq, 'last', fmt(now))
-- Keep the log until its newest entry (not necessarily this one, after a
-- Release) has left the hour window.
local newest = tonumber(redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2])
local ttl = math.floor((newest - now + th) / 1000) + margin
redis.call('PEXPIRE', log, ttl)
redis.call('PEXPIRE', seq, ttl)
local cm = redis.call('ZCOUNT', log, '(' .. fmt(slot - tm), '+inf')
local ch = redis.call('ZCOUNT', log, '(' .. fmt(slot - th), '+inf')
return {1, slot, now, cm, ch, member}
