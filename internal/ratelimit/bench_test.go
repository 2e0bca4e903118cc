package ratelimit

// Side-by-side benchmarks against one local redis-server: the round-trip
// floor (PING), this limiter (refusal with a full 1,500-entry hour log, and
// the admit path) and go-redis/redis_rate's GCRA, each from one connection
// and from 50 concurrent callers. See README.md for the command and
// figures.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// benchCase is one operation to time; setup prepares it on rdb.
type benchCase struct {
	name  string
	setup func(rdb *redis.Client) (func() error, error)
}

func BenchmarkRedis(b *testing.B) {
	srv := testRedisServer(b)
	cases := slices.Concat(limiterBenchCases(b), redisRateBenchCases(b), redisRate2WindowBenchCases(b))
	for _, tc := range cases {
		for _, callers := range []int{1, 50} {
			b.Run(fmt.Sprintf("%s/callers=%d", tc.name, callers), func(b *testing.B) {
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: callers, MinIdleConns: callers})
				defer rdb.Close()
				do, err := tc.setup(rdb)
				if err != nil {
					b.Fatal(err)
				}
				if err := do(); err != nil { // warm up: load the script, open a connection
					b.Fatal(err)
				}
				benchLatency(b, callers, do)
			})
		}
	}
}

// limiterBenchCases: the round-trip floor and this limiter's refusal (full
// 1,500-entry hour log) and admit paths.
func limiterBenchCases(b *testing.B) []benchCase {
	ctx := context.Background()
	return []benchCase{
		{"ping", func(rdb *redis.Client) (func() error, error) {
			return func() error { return rdb.Ping(ctx).Err() }, nil
		}},
		{"limiter-refuse-1500", func(rdb *redis.Client) (func() error, error) {
			l := New(rdb, complete(Config{Limits: Limits{PerMinute: 1500, PerHour: 1500}, Prefix: testPrefix(b)}))
			for range 1500 {
				if d, err := l.Reserve(ctx, "isolate", 0); err != nil || !d.Allowed {
					return nil, fmt.Errorf("filling the log: %+v, %v", d, err)
				}
			}
			return func() error {
				d, err := l.Reserve(ctx, "isolate", 0)
				if err == nil && d.Allowed {
					err = fmt.Errorf("admitted past a full hour log: %+v", d)
				}
				return err
			}, nil
		}},
		{"limiter-admit", func(rdb *redis.Client) (func() error, error) {
			// Limits never reached; 50 ms windows keep the log ~1-2k entries.
			lim := Limits{PerMinute: 1 << 30, PerHour: 1 << 30, Minute: 50 * time.Millisecond, Hour: 50 * time.Millisecond}
			l := New(rdb, complete(Config{Limits: lim, Prefix: testPrefix(b)}))
			return func() error {
				d, err := l.Reserve(ctx, "isolate", 0)
				if err == nil && !d.Allowed {
					err = fmt.Errorf("refused below the limit: %+v", d)
				}
				return err
			}, nil
		}},
	}
}

// redisRateBenchCases: go-redis/redis_rate's GCRA with one limit.
func redisRateBenchCases(b *testing.B) []benchCase {
	ctx := context.Background()
	return []benchCase{
		{"redis_rate-refuse", func(rdb *redis.Client) (func() error, error) {
			// One call a day: spent by the first call, refused thereafter.
			rl, key := redis_rate.NewLimiter(rdb), testPrefix(b)
			lim := redis_rate.Limit{Rate: 1, Burst: 1, Period: 24 * time.Hour}
			if _, err := rl.Allow(ctx, key, lim); err != nil {
				return nil, err
			}
			return func() error {
				r, err := rl.Allow(ctx, key, lim)
				if err == nil && r.Allowed > 0 {
					err = fmt.Errorf("redis_rate admitted past its limit")
				}
				return err
			}, nil
		}},
		{"redis_rate-admit", func(rdb *redis.Client) (func() error, error) {
			rl, key := redis_rate.NewLimiter(rdb), testPrefix(b)
			lim := rrNeverReached
			return func() error {
				r, err := rl.Allow(ctx, key, lim)
				if err == nil && r.Allowed == 0 {
					err = fmt.Errorf("redis_rate refused below its limit")
				}
				return err
			}, nil
		}},
	}
}

// redisRate2WindowBenchCases: both MDE windows with redis_rate take two
// calls (two round trips) per decision, and a call refused by the second
// has already spent the first: the like-for-like comparison.
func redisRate2WindowBenchCases(b *testing.B) []benchCase {
	ctx := context.Background()
	return []benchCase{
		{"redis_rate-2windows-refuse", func(rdb *redis.Client) (func() error, error) {
			rl, key := redis_rate.NewLimiter(rdb), testPrefix(b)
			perMin := rrNeverReached
			perHour := redis_rate.Limit{Rate: 1, Burst: 1, Period: 24 * time.Hour}
			if _, err := rl.Allow(ctx, key+":h", perHour); err != nil {
				return nil, err
			}
			return func() error {
				if _, err := rl.Allow(ctx, key+":m", perMin); err != nil {
					return err
				}
				r, err := rl.Allow(ctx, key+":h", perHour)
				if err == nil && r.Allowed > 0 {
					err = fmt.Errorf("redis_rate admitted past its limit")
				}
				return err
			}, nil
		}},
		{"redis_rate-2windows-admit", func(rdb *redis.Client) (func() error, error) {
			rl, key := redis_rate.NewLimiter(rdb), testPrefix(b)
			perMin, perHour := rrNeverReached, rrNeverReached
			return func() error {
				for _, l := range []struct {
					k   string
					lim redis_rate.Limit
				}{{key + ":m", perMin}, {key + ":h", perHour}} {
					r, err := rl.Allow(ctx, l.k, l.lim)
					if err == nil && r.Allowed == 0 {
						err = fmt.Errorf("redis_rate refused below its limit")
					}
					if err != nil {
						return err
					}
				}
				return nil
			}, nil
		}},
	}
}

// rrNeverReached is a redis_rate limit the benchmarks never reach. Its
// emission interval (3.6 µs) must survive being added to redis_rate's ~3e8 s
// clock: with Rate 2^30 per second it rounds away and the script never
// writes, which would flatter redis_rate's admit path.
var rrNeverReached = redis_rate.Limit{Rate: 1e9, Burst: 1e9, Period: time.Hour}

// benchLatency runs do b.N times from callers goroutines and reports p50
// and p99 latency next to ns/op (which, with callers > 1, is the inverse
// of throughput).
func benchLatency(b *testing.B, callers int, do func() error) {
	var (
		mu  sync.Mutex
		all []time.Duration
	)
	record := func(ds []time.Duration) {
		mu.Lock()
		all = append(all, ds...)
		mu.Unlock()
	}
	b.ResetTimer()
	if callers == 1 {
		ds := make([]time.Duration, 0, b.N)
		for range b.N {
			t0 := time.Now()
			if err := do(); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
		record(ds)
	} else {
		b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			var ds []time.Duration
			for pb.Next() {
				t0 := time.Now()
				if err := do(); err != nil {
					b.Error(err)
					return
				}
				ds = append(ds, time.Since(t0))
			}
			record(ds)
		})
	}
	b.StopTimer()
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}
