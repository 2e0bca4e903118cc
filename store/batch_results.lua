-- Record MDE's statuses of a batch's sent entries (store/batch_results.go,
-- Batches.RecordResults). KEYS: meta, entries. ARGV: quadruples of
-- position, action id, status, detail (one line; unsuccessful final only).
-- A result applies only to a sent entry with that action id whose status
-- is not final yet: a final status never changes, so concurrent and
-- repeated writers agree and each entry turns final in exactly one call.
-- Returns {'closed'} when the batch is gone, else {'ok', n, entry, ...}:
-- the entries that became final in this call.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'closed'} end
local final = {Succeeded = true, Failed = true, TimeOut = true, Cancelled = true}
-- unpack is bounded by Lua's C stack (8000): read and write in slices of
-- an even size, so HSET's field/value pairs stay together.
local step = 1000
local ns = {}
for i = 1, #ARGV, 4 do ns[#ns + 1] = ARGV[i] end
local ents = {}
for i = 1, #ns, step do
  local last = math.min(i + step - 1, #ns)
  local raws = redis.call('HMGET', KEYS[2], unpack(ns, i, last))
  for j = i, last do
    local raw = raws[j - i + 1]
    if raw and ents[ns[j]] == nil then ents[ns[j]] = cjson.decode(raw) end
  end
end
local order, seen, done = {}, {}, {}
local cv, cu = 0, 0
for i = 1, #ARGV, 4 do
  local n, status = ARGV[i], ARGV[i + 2]
  local e = ents[n]
  if e and e.s == 'sent' and e.x == ARGV[i + 1] and status ~= '' and not final[e.ms or ''] and e.ms ~= status then
    e.ms = status
    if not seen[n] then
      seen[n] = true
      order[#order + 1] = n
    end
    if final[status] then
      done[#done + 1] = n
      if status == 'Succeeded' then
        cv = cv + 1
      else
        cu = cu + 1
        if ARGV[i + 3] ~= '' then e.r = ARGV[i + 3] end
      end
    end
  end
end
local fields, enc = {}, {}
for _, n in ipairs(order) do
  enc[n] = cjson.encode(ents[n])
  fields[#fields + 1] = n
  fields[#fields + 1] = enc[n]
end
for i = 1, #fields, step do
  redis.call('HSET', KEYS[2], unpack(fields, i, math.min(i + step - 1, #fields)))
end
if cv > 0 then redis.call('HINCRBY', KEYS[1], 'cv', cv) end
if cu > 0 then redis.call('HINCRBY', KEYS[1], 'cu', cu) end
local out = {'ok'}
for _, n in ipairs(done) do
  out[#out + 1] = n
  out[#out + 1] = enc[n]
end
return out
