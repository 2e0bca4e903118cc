package commands

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/ratelimit"
)

// oneAMinute is a memory limiter on clk admitting one call per window in
// every budget.
func oneAMinute(clk func() time.Time, window time.Duration) *ratelimit.Memory {
	return ratelimit.NewMemory(limiterConfig(ratelimit.Limits{PerMinute: 1, PerHour: 100, Minute: window, Hour: time.Hour}, clk))
}

// newGate is the production Gate over l on clk.
func newGate(l ratelimit.Backend, maxWait time.Duration, clk func() time.Time) *ratelimit.Gate {
	return ratelimit.NewGate(l, maxWait, clk, zerolog.Nop())
}

// downLimiter fails Reserve while down is set, like a Redis outage.
type downLimiter struct {
	ratelimit.Backend
	down atomic.Bool
}

func (d *downLimiter) Reserve(ctx context.Context, b string, w time.Duration) (ratelimit.Decision, error) {
	if d.down.Load() {
		return ratelimit.Decision{}, errors.Join(ratelimit.ErrUnavailable, errors.New("dial tcp: connection refused"))
	}
	return d.Backend.Reserve(ctx, b, w)
}
