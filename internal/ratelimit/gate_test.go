package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// downBackend fails Reserve while down is set, like a Redis outage.
type downBackend struct {
	*Memory
	down atomic.Bool
}

func (d *downBackend) Reserve(ctx context.Context, b string, w time.Duration) (Decision, error) {
	if d.down.Load() {
		return Decision{}, errors.New("dial tcp: connection refused")
	}
	return d.Memory.Reserve(ctx, b, w)
}

// oneA returns a memory limiter on the real clock admitting one call per
// window.
func oneA(window time.Duration) *Memory {
	return NewMemory(complete(Config{Limits: Limits{PerMinute: 1, PerHour: 100, Minute: window, Hour: time.Hour}}))
}

func newTestGate(b Backend, maxWait time.Duration) *Gate {
	return NewGate(b, maxWait, nil, zerolog.Nop())
}

// mustTicket reserves a slot in "isolate" or fails the test.
func mustTicket(t *testing.T, g *Gate) *Ticket {
	t.Helper()
	tk, err := g.Reserve(context.Background(), "isolate")
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	return tk
}

// TestGateReserveDoesNotWait: Reserve hands out a future slot at once, and
// Wait ends at that slot, not before and not much after.
func TestGateReserveDoesNotWait(t *testing.T) {
	const window = 300 * time.Millisecond
	ctx := context.Background()
	g := newTestGate(oneA(window), time.Hour)
	first := mustTicket(t, g)
	if err := first.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tk := mustTicket(t, g)
	if took := time.Since(start); took > window/3 {
		t.Fatalf("Reserve took %v: it waited for the slot", took)
	}
	// The limiter keeps µs: allow for the first slot's truncation.
	if tk.At.Before(first.At.Add(window-time.Millisecond)) || tk.Budget != "isolate" {
		t.Fatalf("ticket %+v; want budget isolate, At ≥ first slot %v + window", tk, first.At)
	}
	if err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if late := time.Since(tk.At); late < 0 || late > 50*time.Millisecond {
		t.Fatalf("Wait returned %v after the slot; want at the slot", late)
	}
}

func TestGateRefusals(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
		ctxWait time.Duration // >0: the caller's deadline
	}{
		{"beyond maxWait", time.Second, 0},
		{"maxWait 0 admits only now", 0, 0},
		{"beyond the ctx deadline", time.Hour, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			g := newTestGate(oneA(time.Minute), tt.maxWait)
			mustTicket(t, g)
			if tt.ctxWait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxWait)
				defer cancel()
			}
			tk, err := g.Reserve(ctx, "isolate")
			var rl *RateLimitError
			if !errors.As(err, &rl) || tk != nil || rl.At.Before(time.Now().Add(50*time.Second)) {
				t.Fatalf("ticket %+v, err %v; want *RateLimitError with the earliest slot a minute ahead", tk, err)
			}
		})
	}
}

// TestTicketLifecycle: Wait is idempotent, a cancelled Wait and Release
// give the slot back, Release after a sent call keeps it.
func TestTicketLifecycle(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		use       func(t *testing.T, tk *Ticket) // on a slot a minute ahead
		wantDepth int                            // future slots left in the budget
	}{
		{"cancelled wait releases", func(t *testing.T, tk *Ticket) {
			c, cancel := context.WithCancel(ctx)
			cancel()
			if err := tk.Wait(c); !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait: %v; want context.Canceled", err)
			}
			if err := tk.Wait(ctx); err == nil {
				t.Fatal("Wait after the release succeeded; the call must not be sent")
			}
		}, 0},
		{"release gives back, twice is harmless", func(t *testing.T, tk *Ticket) {
			tk.Release()
			tk.Release()
		}, 0},
		{"unused ticket keeps its slot", func(t *testing.T, tk *Ticket) {}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := oneA(time.Minute)
			g := newTestGate(lim, time.Hour)
			mustTicket(t, g)
			tt.use(t, mustTicket(t, g))
			if n, _ := lim.QueueDepth(ctx, "isolate"); n != tt.wantDepth {
				t.Fatalf("%d future slots; want %d", n, tt.wantDepth)
			}
		})
	}
	t.Run("second wait and release after success", func(t *testing.T) {
		lim := oneA(time.Minute)
		g := newTestGate(lim, time.Hour)
		tk := mustTicket(t, g)
		for i := range 2 {
			if err := tk.Wait(ctx); err != nil {
				t.Fatalf("Wait %d: %v", i+1, err)
			}
		}
		tk.Release() // the call went: the slot stays spent
		if next := mustTicket(t, g); next.At.Before(time.Now().Add(50 * time.Second)) {
			t.Fatalf("next slot %v; want a minute ahead: Release after Wait gave the slot back", next.At)
		}
	})
}

func TestGateAdmitAndThrottled(t *testing.T) {
	ctx := context.Background()
	t.Run("admit waits for the slot", func(t *testing.T) {
		const window = 100 * time.Millisecond
		g := newTestGate(oneA(window), time.Hour)
		start := time.Now()
		for range 2 {
			if err := g.Admit(ctx, "isolate"); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took < window-time.Millisecond {
			t.Fatalf("two admits in %v, within one %v window", took, window)
		}
	})
	t.Run("limiter down fails closed", func(t *testing.T) {
		d := &downBackend{Memory: oneA(time.Minute)}
		d.down.Store(true)
		err := newTestGate(d, time.Hour).Admit(ctx, "isolate")
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err %v; want ErrUnavailable", err)
		}
	})
	t.Run("throttled blocks every caller", func(t *testing.T) {
		lim := NewMemory(complete(Config{}))
		newTestGate(lim, time.Hour).Throttled(ctx, "isolate", 7*time.Second)
		d, err := lim.Reserve(ctx, "isolate", 0)
		if err != nil || d.Allowed || d.At.Before(time.Now().Add(6*time.Second)) {
			t.Fatalf("decision %+v, %v; want a refusal until Retry-After", d, err)
		}
	})
}
