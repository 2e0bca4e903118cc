package ratelimit

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// rediser is the part of a go-redis client the limiter uses (as
// go-redis/redis_rate does): *redis.Client, *redis.ClusterClient and the
// failover client all satisfy it. redis.Scripter runs the scripts (EVALSHA,
// falling back to EVAL on NOSCRIPT) and loads them; Ping and ZRem are the
// two plain commands.
type rediser interface {
	redis.Scripter
	Ping(ctx context.Context) *redis.StatusCmd
	ZRem(ctx context.Context, key string, members ...any) *redis.IntCmd
}

var (
	//go:embed reserve.lua
	reserveSrc    string
	reserveScript = redis.NewScript(reserveSrc)
	//go:embed block.lua
	blockSrc    string
	blockScript = redis.NewScript(blockSrc)
	//go:embed depth.lua
	depthSrc    string
	depthScript = redis.NewScript(depthSrc)
)

// Limiter is the exact two-window sliding-log rate limiter shared by all
// replicas through Redis. One script call (one round trip) decides both
// windows atomically against the Redis server's clock. It implements
// Backend. Safe for concurrent use.
type Limiter struct {
	rdb rediser
	cfg Config
	// testNow, set only by tests, replaces Redis TIME inside the scripts
	// (µs since the epoch) for deterministic boundary tests.
	testNow func() int64
}

// New returns a limiter on rdb (a *redis.Client, *redis.ClusterClient or
// failover client). It panics when cfg lacks a value (see Config).
func New(rdb rediser, cfg Config) *Limiter {
	return &Limiter{rdb: rdb, cfg: cfg.checked()}
}

// Config returns the configuration (with the clock set).
func (l *Limiter) Config() Config { return l.cfg }

// Limits are the counts and windows l enforces.
func (l *Limiter) Limits() Limits { return l.cfg.Limits }

func unavailable(op, budget string, err error) error {
	return fmt.Errorf("%w: %s for budget %q: %w", ErrUnavailable, op, budget, err)
}

func (l *Limiter) nowArg() string {
	if l.testNow == nil {
		return ""
	}
	return fmt.Sprint(l.testNow())
}

// Ping checks that Redis answers and loads the scripts (on every master of
// a cluster), for readiness probes. Errors wrap ErrUnavailable.
func (l *Limiter) Ping(ctx context.Context) error {
	if err := l.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: ping: %w", ErrUnavailable, err)
	}
	for _, s := range []*redis.Script{reserveScript, blockScript, depthScript} {
		if err := s.Load(ctx, l.rdb).Err(); err != nil {
			return fmt.Errorf("%w: script load: %w", ErrUnavailable, err)
		}
	}
	return nil
}

// reservation is a decision plus the server-clock times it came from.
type reservation struct {
	Decision
	slot, now int64 // µs, server clock
}

// Reserve asks for one call in budget. maxWait 0 (or negative): admit only
// if the call may go now. maxWait > 0: hand out the next free slot (FIFO)
// if it is at most maxWait away. A refusal is Decision{Allowed: false, At:
// exact earliest admission} and changes nothing in Redis. Errors wrap
// ErrUnavailable: the caller must not call MDE.
//
// At is expressed on the local clock (cfg.Now): server time of the slot
// minus server now, added to local now.
func (l *Limiter) Reserve(ctx context.Context, budget string, maxWait time.Duration) (Decision, error) {
	r, err := l.reserve(ctx, budget, maxWait)
	return r.Decision, err
}

func (l *Limiter) reserve(ctx context.Context, budget string, maxWait time.Duration) (reservation, error) {
	if err := l.check(budget); err != nil {
		return reservation{}, err
	}
	maxWait = max(maxWait, 0)
	logKey, seqKey := Keys(l.cfg.Prefix, budget)
	lim := l.cfg.Limits
	v, err := reserveScript.Run(ctx, l.rdb, []string{logKey, seqKey},
		lim.PerMinute, lim.Minute.Microseconds(), lim.PerHour, lim.Hour.Microseconds(),
		maxWait.Microseconds(), ttlMargin.Milliseconds(), l.nowArg()).Slice()
	if err != nil {
		return reservation{}, unavailable("reserve", budget, err)
	}
	r, err := parseReservation(v)
	if err != nil {
		return reservation{}, unavailable("reserve", budget, err)
	}
	r.At = l.cfg.Now().Add(time.Duration(r.slot-r.now) * time.Microsecond)
	return r, nil
}

func parseReservation(v []any) (reservation, error) {
	if len(v) != 6 {
		return reservation{}, fmt.Errorf("unexpected script reply %v", v)
	}
	var n [5]int64
	for i := range n {
		x, ok := v[i].(int64)
		if !ok {
			return reservation{}, fmt.Errorf("unexpected script reply %v", v)
		}
		n[i] = x
	}
	tok, ok := v[5].(string)
	if !ok {
		return reservation{}, fmt.Errorf("unexpected script reply %v", v)
	}
	return reservation{
		Decision: Decision{Allowed: n[0] == 1, Token: tok, Minute: int(n[3]), Hour: int(n[4])},
		slot:     n[1], now: n[2],
	}, nil
}

func (l *Limiter) check(budget string) error {
	if err := checkName("prefix", l.cfg.Prefix); err != nil {
		return err
	}
	return checkName("budget", budget)
}

// Release gives back an admitted slot whose call was never sent. Releasing
// a refused decision, or twice, does nothing. Errors wrap ErrUnavailable.
func (l *Limiter) Release(ctx context.Context, budget string, d Decision) error {
	if err := l.check(budget); err != nil {
		return err
	}
	if !d.Allowed || d.Token == "" {
		return nil
	}
	logKey, _ := Keys(l.cfg.Prefix, budget)
	if err := l.rdb.ZRem(ctx, logKey, d.Token).Err(); err != nil {
		return unavailable("release", budget, err)
	}
	return nil
}

// Block holds budget off on every replica until `until` (MDE 429
// Retry-After); an earlier until never shortens an existing block. until is
// turned into a delay on the local clock and applied on the server's clock.
// Errors wrap ErrUnavailable.
func (l *Limiter) Block(ctx context.Context, budget string, until time.Time) error {
	if err := l.check(budget); err != nil {
		return err
	}
	delay := until.Sub(l.cfg.Now())
	if delay <= 0 {
		return nil
	}
	_, seqKey := Keys(l.cfg.Prefix, budget)
	err := blockScript.Run(ctx, l.rdb, []string{seqKey},
		delay.Microseconds(), ttlMargin.Milliseconds(), l.nowArg()).Err()
	if err != nil {
		return unavailable("block", budget, err)
	}
	return nil
}

// QueueDepth returns the number of admitted slots still in the future
// (reservations waiting for their time), for metrics.
func (l *Limiter) QueueDepth(ctx context.Context, budget string) (int, error) {
	if err := l.check(budget); err != nil {
		return 0, err
	}
	logKey, seqKey := Keys(l.cfg.Prefix, budget)
	n, err := depthScript.Run(ctx, l.rdb, []string{logKey, seqKey}, l.nowArg()).Int()
	if err != nil {
		return 0, unavailable("queue depth", budget, err)
	}
	return n, nil
}
