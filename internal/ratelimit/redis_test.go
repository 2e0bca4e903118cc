package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/internal/config"
)

// TestLimiterContract runs the one limiter suite against the memory twin,
// a single Redis node and a 3-node Redis Cluster.
func TestLimiterContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		runLimiterContract(t, func(t testing.TB, cfg Config, clk *limClock) limiterUnderTest {
			if clk != nil {
				cfg.Now = clk.Now
			}
			m := NewMemory(complete(cfg))
			return limiterUnderTest{
				limiterAPI: m,
				replica:    func(testing.TB) limiterAPI { return m },
				state: func(t testing.TB, budget string) string {
					m.mu.Lock()
					defer m.mu.Unlock()
					if b := m.budgets[budget]; b != nil {
						return fmt.Sprintf("%+v", *b)
					}
					return "<none>"
				},
			}
		})
	})
	t.Run("redis", func(t *testing.T) {
		runLimiterContract(t, func(t testing.TB, cfg Config, clk *limClock) limiterUnderTest {
			return redisLimiterUnderTest(t, cfg, clk, func() redis.UniversalClient { return testRedis(t) })
		})
	})
	t.Run("cluster", func(t *testing.T) {
		runLimiterContract(t, func(t testing.TB, cfg Config, clk *limClock) limiterUnderTest {
			return redisLimiterUnderTest(t, cfg, clk, func() redis.UniversalClient { return testCluster(t) })
		})
	})
}

// newTestLimiter builds a Redis limiter on rdb; with clk the scripts use
// clk instead of Redis TIME (the test-only override).
func newTestLimiter(rdb redis.UniversalClient, cfg Config, clk *limClock) *Limiter {
	if clk != nil {
		cfg.Now = clk.Now
	}
	l := New(rdb, complete(cfg))
	if clk != nil {
		l.testNow = func() int64 { return clk.micros() }
	}
	return l
}

func redisLimiterUnderTest(t testing.TB, cfg Config, clk *limClock, dial func() redis.UniversalClient) limiterUnderTest {
	rdb := dial()
	l := newTestLimiter(rdb, cfg, clk)
	return limiterUnderTest{
		limiterAPI: l,
		replica:    func(testing.TB) limiterAPI { return newTestLimiter(dial(), cfg, clk) },
		state:      func(t testing.TB, budget string) string { return redisLimiterState(t, rdb, l.cfg.Prefix, budget) },
	}
}

// redisLimiterState dumps the budget's keys (without TTLs, which tick).
func redisLimiterState(t testing.TB, rdb redis.UniversalClient, prefix, budget string) string {
	t.Helper()
	ctx := context.Background()
	logKey, seqKey := Keys(prefix, budget)
	zs, err := rdb.ZRangeWithScores(ctx, logKey, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	// seq holds the counter, the clock and blocked-until.
	seq, err := rdb.HGetAll(ctx, seqKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("log=%v seq=%v", zs, seq)
}

// TestLimiterRedisKeys: every key written gets a TTL on every writing
// path, all keys of a budget share one cluster slot, and an idle budget
// leaves nothing behind.
func TestLimiterRedisKeys(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		rdb  func(t testing.TB) redis.UniversalClient
	}{
		{"redis", func(t testing.TB) redis.UniversalClient { return testRedis(t) }},
		{"cluster", func(t testing.TB) redis.UniversalClient { return testCluster(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.rdb(t)
			lim := Limits{PerMinute: 2, PerHour: 5, Minute: 100 * time.Millisecond, Hour: 300 * time.Millisecond}
			l := New(rdb, complete(Config{Limits: lim, Prefix: testPrefix(t)}))
			keys := func() []string { a, b := Keys(l.cfg.Prefix, "isolate"); return []string{a, b} }()
			noImmortalKeys := func(step string) {
				t.Helper()
				for _, k := range keys {
					// -2: absent; -1: no TTL, which would block forever.
					if ttl, err := rdb.PTTL(ctx, k).Result(); err != nil || ttl == -1*time.Nanosecond || ttl == -1*time.Millisecond {
						t.Fatalf("after %s: PTTL %s = %v, %v; want a TTL or no key", step, k, ttl, err)
					}
				}
			}
			d := mustReserve(t, l, "isolate", 0)
			noImmortalKeys("admit")
			mustReserve(t, l, "isolate", 0)
			q := mustReserve(t, l, "isolate", time.Second) // a future slot
			if !q.Allowed || !q.At.After(time.Now()) {
				t.Fatalf("queued %+v; want a future slot", q)
			}
			noImmortalKeys("queued admit")
			// The log must outlive its newest reservation by the hour window.
			if ttl := rdb.PTTL(ctx, keys[0]).Val(); ttl < time.Until(q.At)+lim.Hour-50*time.Millisecond {
				t.Fatalf("log PTTL %v; want ≥ time to the reservation (%v) + hour window", ttl, time.Until(q.At))
			}
			if err := l.Release(ctx, "isolate", d); err != nil {
				t.Fatal(err)
			}
			noImmortalKeys("release")
			if err := l.Block(ctx, "isolate", time.Now().Add(200*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			noImmortalKeys("block")
			for _, k := range keys {
				if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
					t.Fatalf("PTTL %s = %v; want > 0 after admit and block", k, ttl)
				}
			}
			if tc.name == "cluster" {
				sameSlot(t, rdb, keys)
			}
			// Idle: every key expires on its own (windows scaled to ms).
			waitGone(t, rdb, keys)
		})
	}
}

// sameSlot asserts that keys share one Redis Cluster slot.
func sameSlot(t *testing.T, rdb redis.UniversalClient, keys []string) {
	t.Helper()
	var slots []int64
	for _, k := range keys {
		s, err := rdb.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	if len(slices.Compact(slices.Clone(slots))) != 1 {
		t.Fatalf("CLUSTER KEYSLOT of %v = %v; want one slot", keys, slots)
	}
}

// waitGone polls until none of keys exists, for at most 10 s.
func waitGone(t *testing.T, rdb redis.UniversalClient, keys []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rdb.Exists(context.Background(), keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %v still present 10s after the last write", n, keys)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// TestLimiterTTLCoversLaterReservation: an admit that lands before a later
// reservation (after a Release) must not shorten the log's TTL below that
// reservation's time in the window.
func TestLimiterTTLCoversLaterReservation(t *testing.T) {
	ctx := context.Background()
	clk := newLimClock()
	rdb := testRedis(t)
	l := newTestLimiter(rdb, Config{Limits: Limits{PerMinute: 2}, Prefix: testPrefix(t)}, clk)
	var ds []Decision
	for range 5 { // slots 0, 0, 61, 61, 122
		ds = append(ds, mustReserve(t, l, "isolate", 5*time.Minute))
	}
	for _, d := range ds[2:4] {
		if err := l.Release(ctx, "isolate", d); err != nil {
			t.Fatal(err)
		}
	}
	clk.Set(limAt(1))
	if d := mustReserve(t, l, "isolate", 5*time.Minute); !d.At.Equal(limAt(61)) {
		t.Fatalf("%+v; want the freed slot t0+61s", d)
	}
	logKey, seqKey := Keys(l.cfg.Prefix, "isolate")
	want := (122-1)*time.Second + config.DefaultRateLimitHour
	for _, k := range []string{logKey, seqKey} {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl < want {
			t.Fatalf("PTTL %s = %v; want ≥ %v (until the t0+122s reservation leaves the hour window)", k, ttl, want)
		}
	}
}

// TestLimiterOneRoundTrip: a decision is one Redis command (EVALSHA) once
// the script is loaded.
func TestLimiterOneRoundTrip(t *testing.T) {
	rdb := testRedis(t)
	var calls atomic.Int64
	rdb.AddHook(limCountHook{&calls})
	l := New(rdb, complete(Config{Prefix: testPrefix(t)}))
	if err := l.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls.Store(0)
	for range 20 {
		mustReserve(t, l, "isolate", 0)
	}
	if n := calls.Load(); n != 20 {
		t.Fatalf("20 decisions took %d commands; want 20", n)
	}
}

type limCountHook struct{ n *atomic.Int64 }

func (h limCountHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h limCountHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h limCountHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
