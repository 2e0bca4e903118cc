package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestThrottledWithoutRetryAfterBlocksMinute: a 429 without Retry-After
// seen by one replica blocks the budget for a whole minute window from
// then, for every replica: another replica's Reserve gets its slot no
// earlier than that (it used to be one second).
func TestThrottledWithoutRetryAfterBlocksMinute(t *testing.T) {
	const window = 61 * time.Second
	cfg := func(t *testing.T) Config {
		return Config{Limits: Limits{PerMinute: 100, PerHour: 1500, Minute: window, Hour: time.Hour}, Prefix: testPrefix(t)}
	}
	for _, tc := range []struct {
		name     string
		replicas func(t *testing.T) (a, b Backend)
	}{
		{"memory", func(t *testing.T) (Backend, Backend) { m := NewMemory(cfg(t)); return m, m }},
		{"redis", func(t *testing.T) (Backend, Backend) {
			c := cfg(t)
			return New(testRedis(t), c), New(testRedis(t), c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a, b := tc.replicas(t)
			ga := NewGate(a, time.Hour, nil, zerolog.Nop())
			gb := NewGate(b, time.Hour, nil, zerolog.Nop())
			before := time.Now()
			ga.Throttled(ctx, "isolate", 0)
			tk, err := gb.Reserve(ctx, "isolate")
			if err != nil {
				t.Fatal(err)
			}
			defer tk.Release()
			// The limiter keeps µs; allow a millisecond of truncation.
			if earliest := before.Add(window - time.Millisecond); tk.At.Before(earliest) {
				t.Fatalf("the other replica's slot is at %v, %v after the 429; want at least the %v window",
					tk.At.Format(time.RFC3339Nano), tk.At.Sub(before), window)
			}
		})
	}
}
