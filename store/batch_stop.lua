-- Stop a running batch (store/batch.go, Batches.Stop): nothing more is
-- claimed. KEYS: meta, queue, claimed, entries. ARGV: by, at (µs), ttl (ms).
-- Returns 1 when this call stopped it, 0 when it was not running; -1 when
-- there is no such batch.
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return -1 end
if st ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'st', 'stopped', 'sb', ARGV[1], 'sa', ARGV[2])
if redis.call('ZCARD', KEYS[3]) <= 1 then
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return 1
