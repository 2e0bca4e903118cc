-- Number of admitted slots still in the future (queued reservations).
-- KEYS[1] log, KEYS[2] seq; ARGV[1] now_us (test-only override; '' in production)
local log, seq = KEYS[1], KEYS[2]
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local last = tonumber(redis.call('HGET', seq, 'last'))
if last and last > now then now = last end
-- Scores are integer µs: "> now" is ">= now+1".
return redis.call('ZCOUNT', log, now + 1, '+inf')
