-- Record what the owner of a claimed entry did (store/batch.go).
-- KEYS: meta, queue, claimed, entries.
-- ARGV: n, owner, attempt, op (sent|failed|skipped|requeue|extend),
--       action id, reason, lease until (µs, extend), ttl (ms).
-- Owner and attempt must match the entry's current claim, else 'lost':
-- a replica whose claim was taken over never overwrites the new owner.
local raw = redis.call('HGET', KEYS[4], ARGV[1])
if not raw then return {'lost'} end
local e = cjson.decode(raw)
if e.s ~= 'claimed' or e.o ~= ARGV[2] or tostring(e.a) ~= ARGV[3] then return {'lost', raw} end
local op = ARGV[4]
if op == 'extend' then
  e.l = ARGV[7]
  local enc = cjson.encode(e)
  redis.call('HSET', KEYS[4], ARGV[1], enc)
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
  return {'ok', enc, 0}
end
e.o = nil
e.l = nil
redis.call('ZREM', KEYS[3], ARGV[1])
if op == 'requeue' then
  e.s = 'queued'
  local enc = cjson.encode(e)
  redis.call('HSET', KEYS[4], ARGV[1], enc)
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
  return {'ok', enc, 0}
end
e.s = op
if ARGV[5] ~= '' then e.x = ARGV[5] end
if ARGV[6] ~= '' then e.r = ARGV[6] end
local enc = cjson.encode(e)
redis.call('HSET', KEYS[4], ARGV[1], enc)
local field = ({sent = 'cs', failed = 'cf', skipped = 'ck'})[op]
redis.call('HINCRBY', KEYS[1], field, 1)
if redis.call('LLEN', KEYS[2]) > 0 or redis.call('ZCARD', KEYS[3]) > 1 then return {'ok', enc, 0} end
if redis.call('HGET', KEYS[1], 'st') == 'running' then redis.call('HSET', KEYS[1], 'st', 'done') end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
return {'ok', enc, 1}
