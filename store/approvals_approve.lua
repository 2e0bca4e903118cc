-- Add one approver to a pending request's set of approvers; approve it when
-- the set holds as many as it needs. One compare-and-set on the set: of
-- any number of concurrent calls, exactly one completes it.
-- KEYS[1] request hash   KEYS[2] due zset   KEYS[3] machine index of the request
-- ARGV[1] id   ARGV[2] approver   ARGV[3] now µs   ARGV[4] decision time µs
-- ARGV[5] retention ms   ARGV[6] CheckAt µs once approved
-- ARGV[7] MessageTS   ARGV[8] Channel   (empty: unchanged)
-- Returns {"counted"|"repeated"|"complete"|"conflict"|"self", record as HGETALL} | {"notfound"}
local id, by = ARGV[1], ARGV[2]

local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then
  return {'notfound'}
end
local h = {}
for i = 1, #flat, 2 do
  h[flat[i]] = flat[i + 1]
end
local version = tonumber(h['v']) or 0

local function touch()
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  if redis.call('GET', KEYS[3]) == id then
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
  end
end

-- As in the transition script: past ExpiresAt nothing can be approved.
if h['s'] == 'pending' and h['ea'] and tonumber(ARGV[3]) >= tonumber(h['ea']) then
  redis.call('HSET', KEYS[1], 's', 'expired', 'db', 'system', 'da', ARGV[3],
    'ua', ARGV[3], 'v', tostring(version + 1))
  redis.call('ZREM', KEYS[2], id)
  touch()
  return {'conflict', redis.call('HGETALL', KEYS[1])}
end
if h['s'] ~= 'pending' then
  return {'conflict', flat}
end
if by == h['rq'] then
  return {'self', flat}
end

local approved = {}
for a in string.gmatch(h['ap'] or '', '[^,]+') do
  if a == by then
    return {'repeated', flat}
  end
  approved[#approved + 1] = a
end
approved[#approved + 1] = by
local needs = math.max(tonumber(h['nd']) or 1, 1)

local set = {'ap', table.concat(approved, ','), 'ua', ARGV[3], 'v', tostring(version + 1)}
if ARGV[7] ~= '' then
  set[#set + 1] = 'ts'
  set[#set + 1] = ARGV[7]
end
if ARGV[8] ~= '' then
  set[#set + 1] = 'ch'
  set[#set + 1] = ARGV[8]
end
local status = 'counted'
if #approved >= needs then
  status = 'complete'
  set[#set + 1] = 's'
  set[#set + 1] = 'approved'
  set[#set + 1] = 'db'
  set[#set + 1] = by
  set[#set + 1] = 'da'
  set[#set + 1] = ARGV[4]
  if ARGV[6] ~= '' then
    set[#set + 1] = 'ka'
    set[#set + 1] = ARGV[6]
    redis.call('ZADD', KEYS[2], ARGV[6], id)
  end
end
redis.call('HSET', KEYS[1], unpack(set))
touch()
return {status, redis.call('HGETALL', KEYS[1])}
