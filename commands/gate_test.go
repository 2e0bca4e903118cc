package commands

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soc/isolate-bot/store"
)

// downLimiter fails Reserve while down is set, like a Redis outage.
type downLimiter struct {
	Limiter
	down atomic.Bool
}

func (d *downLimiter) Reserve(ctx context.Context, b string, w time.Duration) (store.Decision, error) {
	if d.down.Load() {
		return store.Decision{}, errors.Join(store.ErrUnavailable, errors.New("dial tcp: connection refused"))
	}
	return d.Limiter.Reserve(ctx, b, w)
}

func oneAMinute(clk func() time.Time, window time.Duration) *store.MemoryLimiter {
	return store.NewMemoryLimiter(store.LimiterConfig{
		Limits: store.Limits{PerMinute: 1, PerHour: 100, Minute: window, Hour: time.Hour},
		Now:    clk,
	})
}

func TestGate(t *testing.T) {
	ctx := context.Background()
	const window = 50 * time.Millisecond

	t.Run("admits now without notice", func(t *testing.T) {
		g := NewGate(oneAMinute(time.Now, window), time.Hour, nil)
		noticed := false
		if err := g.Admit(withQueueNotice(ctx, func(time.Time) error { noticed = true; return nil }), "isolate"); err != nil || noticed {
			t.Fatalf("err %v, noticed %v", err, noticed)
		}
	})

	t.Run("queues: notice with the slot, then waits for it", func(t *testing.T) {
		g := NewGate(oneAMinute(time.Now, window), time.Hour, nil)
		start := time.Now().Truncate(time.Microsecond) // the limiter keeps µs
		if err := g.Admit(ctx, "isolate"); err != nil {
			t.Fatal(err)
		}
		var at time.Time
		if err := g.Admit(withQueueNotice(ctx, func(a time.Time) error { at = a; return nil }), "isolate"); err != nil {
			t.Fatal(err)
		}
		if at.Before(start.Add(window)) || time.Now().Before(at) {
			t.Fatalf("slot %v (start %v), returned at %v", at, start, time.Now())
		}
	})

	t.Run("refuses beyond maxWait with the earliest time", func(t *testing.T) {
		g := NewGate(oneAMinute(time.Now, time.Minute), time.Second, nil)
		_ = g.Admit(ctx, "isolate")
		err := g.Admit(ctx, "isolate")
		var rl *RateLimitError
		if !errors.As(err, &rl) || rl.At.Before(time.Now().Add(50*time.Second)) {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("ctx deadline caps the wait", func(t *testing.T) {
		g := NewGate(oneAMinute(time.Now, time.Minute), time.Hour, nil)
		_ = g.Admit(ctx, "isolate")
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var rl *RateLimitError
		if err := g.Admit(c, "isolate"); !errors.As(err, &rl) {
			t.Fatalf("err %v, want a refusal rather than a slot the caller cannot use", err)
		}
	})

	t.Run("veto and cancel release the slot", func(t *testing.T) {
		lim := oneAMinute(time.Now, time.Minute)
		g := NewGate(lim, time.Hour, nil)
		_ = g.Admit(ctx, "isolate")
		veto := errors.New("taken over")
		var first time.Time
		err := g.Admit(withQueueNotice(ctx, func(a time.Time) error { first = a; return veto }), "isolate")
		if !errors.Is(err, veto) {
			t.Fatalf("err %v", err)
		}
		c, cancel := context.WithCancel(ctx)
		var second time.Time
		err = g.Admit(withQueueNotice(c, func(a time.Time) error { second = a; cancel(); return nil }), "isolate")
		if !errors.Is(err, context.Canceled) || second.Sub(first) > time.Second {
			t.Fatalf("err %v; slot %v after veto of %v: not released", err, second, first)
		}
		if n, _ := lim.QueueDepth(ctx, "isolate"); n != 0 {
			t.Fatalf("%d reservations left after cancel", n)
		}
	})

	t.Run("limiter down fails closed", func(t *testing.T) {
		d := &downLimiter{Limiter: oneAMinute(time.Now, window)}
		d.down.Store(true)
		err := NewGate(d, time.Hour, nil).Admit(ctx, "isolate")
		if !errors.Is(err, ErrLimiterUnavailable) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("throttled blocks every caller", func(t *testing.T) {
		lim := store.NewMemoryLimiter(store.LimiterConfig{Now: time.Now})
		g := NewGate(lim, time.Hour, nil)
		g.Throttled(ctx, "isolate", 7*time.Second)
		d, err := lim.Reserve(ctx, "isolate", 0)
		if err != nil || d.Allowed || d.At.Before(time.Now().Add(6*time.Second)) {
			t.Fatalf("decision %+v, %v; want a refusal until Retry-After", d, err)
		}
	})
}
