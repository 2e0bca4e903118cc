-- Compare-and-set one request from ARGV[2] to ARGV[3].
-- KEYS[1] request hash   KEYS[2] due zset   KEYS[3] machine index of the request
-- ARGV[1] id   ARGV[2] from   ARGV[3] to   ARGV[4] IfVersion (0: any)
-- ARGV[5] now µs   ARGV[6] change time µs   ARGV[7] retention ms
-- ARGV[8] "1" if from → to is allowed (store.Allowed, the one definition)
-- ARGV[9] by   ARGV[10] RunAt µs   ARGV[11] CheckAt µs   ARGV[12] MachineActionID
-- ARGV[13] Note   ARGV[14] MessageTS   ARGV[15] Channel   (empty: unchanged)
-- Returns {"ok"|"conflict", record as HGETALL} | {"notfound"}
local terminal = {denied = true, expired = true, cancelled = true, done = true, failed = true}
local id, from, to = ARGV[1], ARGV[2], ARGV[3]

local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then
  return {'notfound'}
end
local h = {}
for i = 1, #flat, 2 do
  h[flat[i]] = flat[i + 1]
end
local version = tonumber(h['v']) or 0

-- Keep the record and, if it still points here, the machine index for
-- Retention after every write.
local function touch()
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  if redis.call('GET', KEYS[3]) == id then
    redis.call('PEXPIRE', KEYS[3], ARGV[7])
  end
end

-- A pending request past ExpiresAt can no longer be decided: expire it now.
if h['s'] == 'pending' and h['ea'] and tonumber(ARGV[5]) >= tonumber(h['ea'])
    and to ~= 'expired' and to ~= 'cancelled' then
  redis.call('HSET', KEYS[1], 's', 'expired', 'db', 'system', 'da', ARGV[5],
    'ua', ARGV[5], 'v', tostring(version + 1))
  redis.call('ZREM', KEYS[2], id)
  touch()
  return {'conflict', redis.call('HGETALL', KEYS[1])}
end

if h['s'] ~= from or ARGV[8] ~= '1'
    or (ARGV[4] ~= '0' and tonumber(ARGV[4]) ~= version) then
  return {'conflict', flat}
end
-- A request needing several approvers is approved only by approve.lua,
-- when its set of approvers is complete.
if from == 'pending' and to == 'approved' and (tonumber(h['nd']) or 1) > 1 then
  return {'conflict', flat}
end

local set = {'s', to, 'ua', ARGV[5], 'v', tostring(version + 1)}
local function put(f, v)
  if v ~= '' then
    set[#set + 1] = f
    set[#set + 1] = v
  end
end
if from == 'pending' and to ~= 'pending' then
  put('db', ARGV[9])
  put('da', ARGV[6])
end
put('ra', ARGV[10])
put('ka', ARGV[11])
put('ma', ARGV[12])
put('n', ARGV[13])
put('ts', ARGV[14])
put('ch', ARGV[15])
redis.call('HSET', KEYS[1], unpack(set))

if terminal[to] then
  redis.call('ZREM', KEYS[2], id)
else
  local checkAt = ARGV[11]
  if checkAt == '' then
    checkAt = h['ka'] or h['ea'] or '0'
  end
  redis.call('ZADD', KEYS[2], checkAt, id)
end
touch()
return {'ok', redis.call('HGETALL', KEYS[1])}
