-- Claim the next entry of a batch (store/batch.go, Batches.Claim).
-- KEYS: meta, queue, claimed, entries. ARGV: now (µs), owner, lease until (µs).
-- An entry whose claim ran out (score <= now in claimed) comes first and is
-- flagged reclaimed (its previous owner may have sent); then the queue's
-- head, while the batch runs. claimed holds a sentinel member at +inf from
-- creation, so the key (and its TTL) never disappears.
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return {'closed'} end
local n = nil
local re = 0
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, 1)
if stale[1] then
  n = stale[1]
  re = 1
elseif st == 'running' then
  n = redis.call('LPOP', KEYS[2])
end
if not n then
  if st == 'running' or redis.call('ZCARD', KEYS[3]) > 1 then return {'empty'} end
  return {'closed'}
end
local e = cjson.decode(redis.call('HGET', KEYS[4], n))
e.s = 'claimed'
e.o = ARGV[2]
e.l = ARGV[3]
e.a = (tonumber(e.a) or 0) + 1
local enc = cjson.encode(e)
redis.call('HSET', KEYS[4], n, enc)
redis.call('ZADD', KEYS[3], ARGV[3], n)
return {'ok', n, enc, re}
