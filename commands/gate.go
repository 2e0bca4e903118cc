package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/store"
)

// ErrLimiterUnavailable: the shared rate limiter could not be asked, so no
// MDE call was sent (fail closed). It also wraps the store's error.
var ErrLimiterUnavailable = errors.New("the MDE rate limiter (state store) is unavailable; nothing was sent to MDE")

// RateLimitError: the next free slot of Budget is At, later than the
// caller may wait. Nothing was sent to MDE.
type RateLimitError struct {
	Budget string
	At     time.Time
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("MDE rate limit for %s: the next free slot is at %s, later than allowed to wait", e.Budget, e.At.UTC().Format("15:04:05 UTC"))
}

// Gate admits every MDE HTTP attempt through the shared Limiter, so all
// replicas together stay within MDE's 100/min and 1500/h per API. It
// implements defender.Gate.
type Gate struct {
	l       Limiter
	maxWait time.Duration
	now     func() time.Time
	// Logger receives the limiter failures Throttled cannot return.
	Logger zerolog.Logger
}

// NewGate returns a Gate over l. A call waits at most maxWait (and never
// beyond its ctx deadline) for a slot; now defaults to time.Now.
func NewGate(l Limiter, maxWait time.Duration, now func() time.Time) *Gate {
	if now == nil {
		now = time.Now
	}
	return &Gate{l: l, maxWait: maxWait, now: now, Logger: zerolog.Nop()}
}

// Admit reserves a slot in budget and returns when the call may be sent.
// When the slot lies in the future it first tells the queue notice carried
// in ctx (which may veto by returning an error), then waits. Errors mean
// nothing may be sent: *RateLimitError (slot too far away),
// ErrLimiterUnavailable (store failed), the notice's error or ctx's error.
func (g *Gate) Admit(ctx context.Context, budget string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := g.now()
	maxWait := g.maxWait
	if dl, ok := ctx.Deadline(); ok {
		// Reserving a slot the caller cannot live to use would waste it.
		if left := dl.Sub(now); left < maxWait {
			maxWait = max(left, 0)
		}
	}
	d, err := g.l.Reserve(ctx, budget, maxWait)
	if err != nil {
		return fmt.Errorf("%w: reserve %s: %w", ErrLimiterUnavailable, budget, err)
	}
	if !d.Allowed {
		return &RateLimitError{Budget: budget, At: d.At}
	}
	wait := d.At.Sub(g.now())
	if wait <= 0 {
		return nil
	}
	if notice := queueNoticeFrom(ctx); notice != nil {
		if err := notice(d.At); err != nil {
			g.release(budget, d)
			return err
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		g.release(budget, d)
		return ctx.Err()
	}
}

// release frees a slot whose call was never sent. Its own short ctx: the
// caller's ctx is usually already done.
func (g *Gate) release(budget string, d store.Decision) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.l.Release(ctx, budget, d); err != nil {
		logFor(ctx, &g.Logger).Warn().Err(err).Str("budget", budget).Msg("could not release an unused MDE rate-limit slot")
	}
}

// Throttled records MDE's 429 for every replica: nobody sends to budget
// before retryAfter has passed.
func (g *Gate) Throttled(ctx context.Context, budget string, retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = time.Second
	}
	if err := g.l.Block(context.WithoutCancel(ctx), budget, g.now().Add(retryAfter)); err != nil {
		logFor(ctx, &g.Logger).Error().Err(err).Str("budget", budget).Msg("could not share MDE's Retry-After with other replicas")
	}
}

type queueNoticeKey struct{}

// withQueueNotice makes Gate.Admit call fn with the reserved time before
// waiting for a future slot. fn returning an error stops the call.
func withQueueNotice(ctx context.Context, fn func(at time.Time) error) context.Context {
	return context.WithValue(ctx, queueNoticeKey{}, fn)
}

func queueNoticeFrom(ctx context.Context) func(time.Time) error {
	fn, _ := ctx.Value(queueNoticeKey{}).(func(time.Time) error)
	return fn
}
