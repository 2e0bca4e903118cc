-- Create a pending request unless its machine has an open one.
-- KEYS[1] new request hash   KEYS[2] machine index (string: latest id)
-- KEYS[3] due zset           KEYS[4] existing request hash (unread when ARGV[1] == "")
-- ARGV[1] id the caller read from KEYS[2] ("" for none)
-- ARGV[2] retention ms       ARGV[3] new id    ARGV[4] CheckAt (µs, zset score)
-- ARGV[5..] field/value pairs of the new record
-- Returns {"ok"} | {"open", existing record as HGETALL} | {"retry", current index}
local terminal = {denied = true, expired = true, cancelled = true, done = true, failed = true}

local cur = redis.call('GET', KEYS[2]) or ''
if cur ~= ARGV[1] then
  -- The index moved since the caller read it: KEYS[4] is the wrong record.
  return {'retry', cur}
end
if cur ~= '' then
  local st = redis.call('HGET', KEYS[4], 's')
  -- Unknown states count as open: refuse rather than run two requests.
  if st and not terminal[st] then
    return {'open', redis.call('HGETALL', KEYS[4])}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('request id ' .. ARGV[3] .. ' already in use')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return {'ok'}
