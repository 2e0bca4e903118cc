-- Claim a batch's one-off thread reply (store/batch_results.go,
-- Batches.ClaimReply). KEYS: meta. ARGV: field (r:<name>), claim time (µs).
-- Only on a live batch: HSETNX on a gone batch would bring its hash back
-- without a TTL. Returns 1 to the one claimer, 0 after, -1 when gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
