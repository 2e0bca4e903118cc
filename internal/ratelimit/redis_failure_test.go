package ratelimit

// Redis-only tests of failures and edges: script cache flushed, server
// killed, client clock skewed, a block outliving the log, and the commands
// each script path makes.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/internal/redistest"
)

// TestLimiterScriptFlush: the script cache emptied mid-run (restart,
// failover, SCRIPT FLUSH) costs one EVAL, not an error.
func TestLimiterScriptFlush(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		rdb  func(t testing.TB) redis.UniversalClient
	}{
		{"redis", func(t testing.TB) redis.UniversalClient { return redistest.Start(t).Client() }},
		{"cluster", func(t testing.TB) redis.UniversalClient { return testCluster(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.rdb(t)
			l := New(rdb, complete(Config{Limits: Limits{PerMinute: 3}, Prefix: testPrefix(t)}))
			mustReserve(t, l, "isolate", 0)
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if d := mustReserve(t, l, "isolate", 0); !d.Allowed || d.Minute != 2 {
				t.Fatalf("after SCRIPT FLUSH: %+v; want the 2nd admission", d)
			}
			if err := l.Block(ctx, "isolate", time.Now().Add(time.Second)); err != nil {
				t.Fatalf("Block after SCRIPT FLUSH: %v", err)
			}
		})
	}
}

// TestLimiterRedisDown: Redis killed mid-run. Every call fails with an
// error wrapping ErrUnavailable and never reports Allowed; after a restart
// it works again.
func TestLimiterRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	l := New(rdb, complete(Config{Limits: Limits{PerMinute: 100000, PerHour: 100000}, Prefix: testPrefix(t)}))

	errsAfter := hammerThroughKill(t, l, srv.Stop)
	if errsAfter == 0 {
		t.Fatal("no call failed after Stop")
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Ping":       l.Ping(ctx),
		"Block":      l.Block(ctx, "isolate", time.Now().Add(time.Minute)),
		"Release":    l.Release(ctx, "isolate", Decision{Allowed: true, Token: "1-1"}),
		"QueueDepth": func() error { _, err := l.QueueDepth(ctx, "isolate"); return err }(),
	} {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Redis down: %v; want ErrUnavailable", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "redis.call") {
			t.Errorf("%s error leaks script internals: %v", name, err)
		}
	}
	srv.Restart()
	// go-redis may answer with the last dial error for a moment after the
	// server is back; poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := l.Reserve(ctx, "isolate", 0)
		if err == nil {
			if !d.Allowed {
				t.Fatalf("after restart: %+v; want admitted", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 10s after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// hammerThroughKill runs 8 goroutines of Reserve calls, calls kill once 20
// have succeeded, and lets each goroutine stop after its third failure. No
// call may admit with an error, fail without ErrUnavailable, or succeed
// after kill returned. It returns the failures after kill.
func hammerThroughKill(t *testing.T, l *Limiter, kill func()) (errsAfter int) {
	var (
		stopped  atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		okBefore int
		once     sync.Once
	)
	started := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for fails := 0; fails < 3; {
				after := stopped.Load() // kill had returned before this call began
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				d, err := l.Reserve(ctx, "isolate", 0)
				cancel()
				mu.Lock()
				switch {
				case err != nil && d.Allowed:
					t.Errorf("Reserve: Allowed=true together with error %v", err)
				case err != nil && !errors.Is(err, ErrUnavailable):
					t.Errorf("Reserve error %v does not wrap ErrUnavailable", err)
				case err == nil && after:
					t.Errorf("Reserve succeeded (%+v) after Redis was killed", d)
				case err == nil:
					okBefore++
					if okBefore == 20 {
						once.Do(func() { close(started) })
					}
				default:
					fails++
					if after {
						errsAfter++
					}
				}
				mu.Unlock()
			}
		})
	}
	<-started
	kill()
	stopped.Store(true)
	wg.Wait()
	return errsAfter
}

// TestLimiterClientClockSkew: the client's clock does not move decisions;
// At is expressed on it. A replica an hour ahead still sees "now".
func TestLimiterClientClockSkew(t *testing.T) {
	skew := time.Hour
	now := func() time.Time { return time.Now().Add(skew) }
	l := New(testRedis(t), complete(Config{Limits: Limits{PerMinute: 1}, Prefix: testPrefix(t), Now: now}))
	d := mustReserve(t, l, "isolate", 0)
	if !d.Allowed || d.At.Sub(now()).Abs() > time.Second {
		t.Fatalf("%+v; want admitted at the skewed client's now", d)
	}
	d = mustReserve(t, l, "isolate", 0)
	if wait := d.At.Sub(now()); d.Allowed || wait < 59*time.Second || wait > 61*time.Second {
		t.Fatalf("%+v (wait %v); want refused for ~61s on the client clock", d, wait)
	}
}

// TestLimiterBlockOutlivesLog: blocked-until lives in the seq hash, so
// Block must keep that hash alive until the block ends even when the log
// (and the TTL admits gave the hash) expires sooner, and must never
// shorten the hash's TTL.
func TestLimiterBlockOutlivesLog(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	// Windows scaled to ms: an admit keeps the keys for ~1.1 s.
	lim := Limits{PerMinute: 10, PerHour: 10, Minute: 50 * time.Millisecond, Hour: 100 * time.Millisecond}
	l := New(rdb, complete(Config{Limits: lim, Prefix: testPrefix(t)}))
	logKey, seqKey := Keys(l.cfg.Prefix, "isolate")
	if d := mustReserve(t, l, "isolate", 0); !d.Allowed {
		t.Fatalf("%+v; want admitted", d)
	}
	blockEnd := time.Now().Add(3 * time.Second)
	if err := l.Block(ctx, "isolate", blockEnd); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, seqKey).Val(); ttl < 2900*time.Millisecond {
		t.Fatalf("seq PTTL after a 3 s Block = %v; want ≥ the block", ttl)
	}
	if err := l.Block(ctx, "isolate", time.Now().Add(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, seqKey).Val(); ttl < 2800*time.Millisecond {
		t.Fatalf("seq PTTL after a shorter Block = %v; a Block must never shorten it", ttl)
	}
	// Once the log has expired on its own, the block still holds.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for rdb.Exists(ctx, logKey).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("log still present; want it expired ~1.1 s after the admit")
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	d := mustReserve(t, l, "isolate", 0)
	if d.Allowed || d.At.Sub(blockEnd).Abs() > 50*time.Millisecond {
		t.Fatalf("after the log expired: %+v; want refused until the block ends at %v", d, blockEnd)
	}
}

// TestLimiterScriptCalls pins the number of commands the reserve script
// makes per path (each costs ~1-2 µs of Redis's single thread; see the
// Benchmarks section of README.md). INFO commandstats counts the commands
// a script calls.
func TestLimiterScriptCalls(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client() // own server: commandstats are global
	lim := Limits{PerMinute: 3, PerHour: 3}
	l := New(rdb, complete(Config{Limits: lim, Prefix: testPrefix(t)}))
	if err := l.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustReserve(t, l, "isolate", 0)
	}
	calls := func(what string, reserve func() Decision, allowed bool, want int) {
		t.Helper()
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if d := reserve(); d.Allowed != allowed {
			t.Fatalf("%s: %+v; want Allowed=%v", what, d, allowed)
		}
		info, err := rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		n, cmds := 0, []string{}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
			if !ok || name == "evalsha" || name == "eval" || strings.HasPrefix(name, "config") {
				continue
			}
			var c int
			if _, err := fmt.Sscanf(rest, "%d", &c); err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
			n += c
			cmds = append(cmds, fmt.Sprintf("%s×%d", name, c))
		}
		if n != want {
			t.Fatalf("%s: the script made %d calls (%v); want %d", what, n, cmds, want)
		}
	}
	calls("refusal, both windows full", func() Decision { return mustReserve(t, l, "isolate", 0) }, false, 7)
	calls("admit now", func() Decision { return mustReserve(t, l, "unisolate", 0) }, true, 9)
	calls("queued admit, both windows full", func() Decision { return mustReserve(t, l, "isolate", 2*time.Hour) }, true, 12)
}
