package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The short-lived state a flood of deliveries creates: de-duplication of
// deliveries and the per-key hit counters behind the refusal throttle. Both
// stay small and expire within minutes, whatever AUDIT_RETENTION says.

var (
	//go:embed approvals_seen.lua
	seenSrc    string
	seenScript = redis.NewScript(seenSrc)
)

// FirstDelivery reports whether key is seen for the first time within ttl:
// true exactly once per key per ttl across replicas. Every key is a member
// of the one sorted set "{prefix}:seen", scored by its expiry on Redis's
// clock, so a flood of deliveries adds no keys and nothing outlives ttl.
func (a *Approvals) FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if key == "" || ttl <= 0 {
		return false, fmt.Errorf("first delivery: need a key and a positive ttl (got %q, %v)", key, ttl)
	}
	n, err := seenScript.Run(ctx, a.rdb, []string{a.keys.seen()}, key, max(ttl.Milliseconds(), 1)).Int()
	if err != nil {
		return false, unavailable("record delivery", err)
	}
	return n == 1, nil
}

// Hit counts one hit on key and returns the hits within the fixed window
// that began with the first of them ("{prefix}:hits:<key>", an integer
// that expires with the window): shared by all replicas.
func (a *Approvals) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	if key == "" || window <= 0 {
		return 0, fmt.Errorf("hit: need a key and a positive window (got %q, %v)", key, window)
	}
	k := a.keys.hits(key)
	var incr *redis.IntCmd
	_, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SetArgs(ctx, k, 0, redis.SetArgs{Mode: "NX", TTL: window})
		incr = p.Incr(ctx, k)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) { // SET NX on an existing key answers nil
		return 0, unavailable("count hit on "+key, err)
	}
	if incr.Err() != nil {
		return 0, unavailable("count hit on "+key, incr.Err())
	}
	return incr.Val(), nil
}

// Hits returns the hits on key within its current window (0 when none).
func (a *Approvals) Hits(ctx context.Context, key string) (int64, error) {
	v, err := a.rdb.Get(ctx, a.keys.hits(key)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("read hits on "+key, err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("hits on %s: %q is not a count: %w", key, v, err)
	}
	return n, nil
}

// AuditTail returns the last n entries of the global audit stream, oldest
// first: where events without a request (refusals) can be read back.
func (a *Approvals) AuditTail(ctx context.Context, n int64) ([]Event, error) {
	msgs, err := a.rdb.XRevRangeN(ctx, a.keys.audit(), "+", "-", n).Result()
	if err != nil {
		return nil, unavailable("read the audit log", err)
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range slices.Backward(msgs) {
		e, err := parseEvent(m.ID, m.Values)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
