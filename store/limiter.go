package store

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Default limits: MDE allows 100 calls per minute and 1500 per hour per API.
// The windows are widened by a margin against clock jitter and network
// delay between our decision and MDE's count; the counts never shrink.
const (
	DefaultPerMinute     = 100
	DefaultPerHour       = 1500
	DefaultMinuteWindow  = 61 * time.Second
	DefaultHourWindow    = 3605 * time.Second
	DefaultLimiterPrefix = "isolate-bot"

	// ttlMargin is added to every key TTL: a key lives until its newest
	// entry (or the block) has expired, plus this.
	ttlMargin = time.Second
)

// LimiterConfig configures Limiter and MemoryLimiter. Zero fields take the
// defaults above.
type LimiterConfig struct {
	Limits Limits
	// Prefix of every key ("isolate-bot"); lets tests and deployments share
	// a Redis. Must not contain '{' or '}'.
	Prefix string
	// Now is the local clock: the memory twin's only clock; the Redis
	// limiter uses it only to turn server-relative slots into Decision.At
	// and Block's until into a delay, so client clock skew never matters.
	Now func() time.Time
}

func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.Limits.PerMinute <= 0 {
		c.Limits.PerMinute = DefaultPerMinute
	}
	if c.Limits.PerHour <= 0 {
		c.Limits.PerHour = DefaultPerHour
	}
	if c.Limits.Minute <= 0 {
		c.Limits.Minute = DefaultMinuteWindow
	}
	if c.Limits.Hour <= 0 {
		c.Limits.Hour = DefaultHourWindow
	}
	if c.Prefix == "" {
		c.Prefix = DefaultLimiterPrefix
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// LimiterKeys returns the Redis keys of one budget: the log of admitted
// slots and the hash holding its counter, clock and blocked-until. They
// share the hash tag {<prefix>:rl:<budget>}, so they live in one Redis
// Cluster slot.
func LimiterKeys(prefix, budget string) (log, seq string) {
	tag := "{" + prefix + ":rl:" + budget + "}"
	return tag + ":log", tag + ":seq"
}

// checkName rejects names that would break the hash tag of the keys.
func checkLimiterName(what, s string) error {
	if s == "" || strings.ContainsAny(s, "{}") {
		return fmt.Errorf("rate limiter: invalid %s %q: must be non-empty, without '{' or '}'", what, s)
	}
	return nil
}

var (
	//go:embed limiter_reserve.lua
	reserveSrc    string
	reserveScript = redis.NewScript(reserveSrc)
	//go:embed limiter_block.lua
	blockSrc    string
	blockScript = redis.NewScript(blockSrc)
	//go:embed limiter_depth.lua
	depthSrc    string
	depthScript = redis.NewScript(depthSrc)
)

// Limiter is the exact two-window sliding-log rate limiter shared by all
// replicas through Redis. One script call (one round trip) decides both
// windows atomically against the Redis server's clock. It implements
// commands.Limiter. Safe for concurrent use.
type Limiter struct {
	rdb redis.UniversalClient
	cfg LimiterConfig
	// testNow, set only by tests, replaces Redis TIME inside the scripts
	// (µs since the epoch) for deterministic boundary tests.
	testNow func() int64
}

// NewLimiter returns a limiter on rdb (a *redis.Client, *redis.ClusterClient
// or failover client).
func NewLimiter(rdb redis.UniversalClient, cfg LimiterConfig) *Limiter {
	return &Limiter{rdb: rdb, cfg: cfg.withDefaults()}
}

// Config returns the effective configuration (defaults applied).
func (l *Limiter) Config() LimiterConfig { return l.cfg }

func limiterUnavailable(op, budget string, err error) error {
	return fmt.Errorf("%w: rate limiter %s for budget %q: %w", ErrUnavailable, op, budget, err)
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
		return fmt.Errorf("%w: rate limiter ping: %w", ErrUnavailable, err)
	}
	for _, s := range []*redis.Script{reserveScript, blockScript, depthScript} {
		if err := s.Load(ctx, l.rdb).Err(); err != nil {
			return fmt.Errorf("%w: rate limiter script load: %w", ErrUnavailable, err)
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
	logKey, seqKey := LimiterKeys(l.cfg.Prefix, budget)
	lim := l.cfg.Limits
	v, err := reserveScript.Run(ctx, l.rdb, []string{logKey, seqKey},
		lim.PerMinute, lim.Minute.Microseconds(), lim.PerHour, lim.Hour.Microseconds(),
		maxWait.Microseconds(), ttlMargin.Milliseconds(), l.nowArg()).Slice()
	if err != nil {
		return reservation{}, limiterUnavailable("reserve", budget, err)
	}
	r, err := parseReservation(v)
	if err != nil {
		return reservation{}, limiterUnavailable("reserve", budget, err)
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
	if err := checkLimiterName("prefix", l.cfg.Prefix); err != nil {
		return err
	}
	return checkLimiterName("budget", budget)
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
	logKey, _ := LimiterKeys(l.cfg.Prefix, budget)
	if err := l.rdb.ZRem(ctx, logKey, d.Token).Err(); err != nil {
		return limiterUnavailable("release", budget, err)
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
	_, seqKey := LimiterKeys(l.cfg.Prefix, budget)
	err := blockScript.Run(ctx, l.rdb, []string{seqKey},
		delay.Microseconds(), ttlMargin.Milliseconds(), l.nowArg()).Err()
	if err != nil {
		return limiterUnavailable("block", budget, err)
	}
	return nil
}

// QueueDepth returns the number of admitted slots still in the future
// (reservations waiting for their time), for metrics.
func (l *Limiter) QueueDepth(ctx context.Context, budget string) (int, error) {
	if err := l.check(budget); err != nil {
		return 0, err
	}
	logKey, seqKey := LimiterKeys(l.cfg.Prefix, budget)
	n, err := depthScript.Run(ctx, l.rdb, []string{logKey, seqKey}, l.nowArg()).Int()
	if err != nil {
		return 0, limiterUnavailable("queue depth", budget, err)
	}
	return n, nil
}
