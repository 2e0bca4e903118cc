-- Append one audit event.
-- KEYS[1] global audit stream   KEYS[2] (optional) the request's own stream
-- ARGV[1] MAXLEN (approximate)  ARGV[2] max age ms (MINID, exact)
-- ARGV[3] retention ms of KEYS[2]   ARGV[4] MAXLEN of KEYS[2]
-- ARGV[5..] field/value pairs
-- Returns the entry id (the same in both streams when possible).
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 5))
-- Age trimming uses the entry id's time, i.e. Redis's clock. Exact (no
-- '~'), so nothing older than the retention outlives the next append even
-- on a quiet stream whose first node spans weeks; it stops at the first
-- young entry, so an append walks at most one stream node (<= 100 entries).
local ms = tonumber(string.match(id, '^(%d+)-'))
local minid = ms - tonumber(ARGV[2])
if minid > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', minid))
end
if #KEYS > 1 then
  local r = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], id, unpack(ARGV, 5))
  if type(r) == 'table' and r.err then
    -- Only if the global stream's last id went backwards (it was deleted):
    -- keep the event, under a fresh id.
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return id
