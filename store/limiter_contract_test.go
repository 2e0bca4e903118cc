package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// limiterAPI is what commands.Limiter needs plus QueueDepth.
type limiterAPI interface {
	Reserve(ctx context.Context, budget string, maxWait time.Duration) (Decision, error)
	Release(ctx context.Context, budget string, d Decision) error
	Block(ctx context.Context, budget string, until time.Time) error
	QueueDepth(ctx context.Context, budget string) (int, error)
}

type limiterUnderTest struct {
	limiterAPI
	// replica opens another limiter on the same state with its own
	// connection pool, as another bot replica; the memory twin returns itself.
	replica func(t testing.TB) limiterAPI
	// state dumps everything stored for budget, to prove a call wrote nothing.
	state func(t testing.TB, budget string) string
}

// limClock is the injected clock (µs). With Redis it also replaces TIME
// inside the scripts through the test-only override.
type limClock struct{ us atomic.Int64 }

// limT0 is an arbitrary realistic start time.
var limT0 = time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)

func newLimClock() *limClock {
	c := &limClock{}
	c.us.Store(limT0.UnixMicro())
	return c
}
func (c *limClock) Now() time.Time          { return time.UnixMicro(c.us.Load()) }
func (c *limClock) Set(t time.Time)         { c.us.Store(t.UnixMicro()) }
func (c *limClock) Advance(d time.Duration) { c.us.Add(d.Microseconds()) }

// newLimiterFunc builds a limiter under test; clk nil means the real clock
// (Redis TIME for Redis). cfg.Prefix is already unique to the test.
type newLimiterFunc func(t testing.TB, cfg LimiterConfig, clk *limClock) limiterUnderTest

func limAt(s float64) time.Time { return limT0.Add(time.Duration(s * float64(time.Second))) }

func mustReserve(t testing.TB, l limiterAPI, budget string, maxWait time.Duration) Decision {
	t.Helper()
	d, err := l.Reserve(context.Background(), budget, maxWait)
	if err != nil {
		t.Fatalf("Reserve(%s, %v): %v", budget, maxWait, err)
	}
	return d
}

// runLimiterContract is the one behaviour suite every limiter passes.
func runLimiterContract(t *testing.T, newLimiter newLimiterFunc) {
	ctx := context.Background()
	const b = "isolate"
	open := func(t *testing.T, lim Limits, clk *limClock) limiterUnderTest {
		return newLimiter(t, LimiterConfig{Limits: lim, Prefix: testPrefix(t)}, clk)
	}

	t.Run("SameMicrosecond", func(t *testing.T) {
		// With a frozen clock every admit shares one µs: members must still
		// be distinct (an overwritten member would under-count).
		for _, l := range []int{1, 3, 100} {
			t.Run(fmt.Sprint(l), func(t *testing.T) {
				clk := newLimClock()
				lt := open(t, Limits{PerMinute: l, PerHour: 1000}, clk)
				seen := map[string]bool{}
				for i := 1; i <= l; i++ {
					d := mustReserve(t, lt, b, 0)
					if !d.Allowed || !d.At.Equal(limT0) || d.Minute != i || d.Hour != i || seen[d.Token] || d.Token == "" {
						t.Fatalf("call %d: %+v; want allowed now, Minute=Hour=%d, fresh token", i, d, i)
					}
					seen[d.Token] = true
				}
				before := lt.state(t, b)
				d := mustReserve(t, lt, b, 0)
				if d.Allowed || !d.At.Equal(limAt(61)) || d.Minute != l {
					t.Fatalf("call %d: %+v; want refused until t0+61s with Minute=%d", l+1, d, l)
				}
				if after := lt.state(t, b); after != before {
					t.Fatalf("refusal changed state:\n%s\n→\n%s", before, after)
				}
			})
		}
	})

	t.Run("ExactRetry", func(t *testing.T) {
		tests := []struct {
			name   string
			lim    Limits
			admits []float64 // seconds after t0
			retry  float64   // exact earliest next admission
		}{
			{"minute", Limits{PerMinute: 3, PerHour: 100}, []float64{0, 1, 2}, 61},
			{"hour", Limits{PerMinute: 100, PerHour: 3}, []float64{0, 100, 200}, 3605},
			{"both full, hour later", Limits{PerMinute: 2, PerHour: 3}, []float64{0, 100, 100}, 3605},
			{"both full, minute later", Limits{PerMinute: 2, PerHour: 3, Minute: 10 * time.Second, Hour: 20 * time.Second}, []float64{0, 15, 15.5}, 25},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				clk := newLimClock()
				lt := open(t, tc.lim, clk)
				for _, s := range tc.admits {
					clk.Set(limAt(s))
					if d := mustReserve(t, lt, b, 0); !d.Allowed {
						t.Fatalf("admit at %vs refused: %+v", s, d)
					}
				}
				R := limAt(tc.retry)
				for _, now := range []time.Time{limAt(tc.admits[len(tc.admits)-1]), R.Add(-time.Microsecond)} {
					clk.Set(now)
					if d := mustReserve(t, lt, b, 0); d.Allowed || !d.At.Equal(R) {
						t.Fatalf("at %v: %+v; want refused with At=%v", now.Sub(limT0), d, tc.retry)
					}
				}
				clk.Set(R)
				if d := mustReserve(t, lt, b, 0); !d.Allowed || !d.At.Equal(R) {
					t.Fatalf("at R: %+v; want admitted at R", d)
				}
			})
		}
	})

	t.Run("NoCrossConsumption", func(t *testing.T) {
		t.Run("hour full, minute empty", func(t *testing.T) {
			clk := newLimClock()
			lt := open(t, Limits{PerMinute: 5, PerHour: 3}, clk)
			for _, s := range []float64{0, 100, 200} {
				clk.Set(limAt(s))
				mustReserve(t, lt, b, 0)
			}
			clk.Set(limAt(300))
			before := lt.state(t, b)
			for range 10 {
				if d := mustReserve(t, lt, b, 0); d.Allowed || d.Minute != 0 || d.Hour != 3 || !d.At.Equal(limAt(3605)) {
					t.Fatalf("%+v; want refused by the hour window (Minute 0, Hour 3, At t0+3605s)", d)
				}
			}
			if after := lt.state(t, b); after != before {
				t.Fatalf("hour refusal changed state:\n%s\n→\n%s", before, after)
			}
		})
		t.Run("minute full, hour free", func(t *testing.T) {
			clk := newLimClock()
			lt := open(t, Limits{PerMinute: 2, PerHour: 10}, clk)
			mustReserve(t, lt, b, 0)
			mustReserve(t, lt, b, 0)
			clk.Set(limAt(1))
			before := lt.state(t, b)
			for range 10 {
				if d := mustReserve(t, lt, b, 0); d.Allowed {
					t.Fatalf("%+v; want refused by the minute window", d)
				}
			}
			if after := lt.state(t, b); after != before {
				t.Fatalf("minute refusal changed state:\n%s\n→\n%s", before, after)
			}
			clk.Set(limAt(61))
			if d := mustReserve(t, lt, b, 0); !d.Allowed || d.Hour != 3 {
				t.Fatalf("%+v; want admitted with Hour=3 (refusals consumed nothing)", d)
			}
		})
	})

	t.Run("QueueFIFOAndRelease", func(t *testing.T) {
		clk := newLimClock()
		lt := open(t, Limits{PerMinute: 3, PerHour: 100}, clk)
		for _, s := range []float64{0, 1, 2} {
			clk.Set(limAt(s))
			mustReserve(t, lt, b, 0)
		}
		clk.Set(limAt(3))
		var queued []Decision
		for _, want := range []float64{61, 62, 63} {
			d := mustReserve(t, lt, b, 2*time.Minute)
			if !d.Allowed || !d.At.Equal(limAt(want)) {
				t.Fatalf("queued %+v; want slot t0+%vs", d, want)
			}
			queued = append(queued, d)
		}
		if n, err := lt.QueueDepth(ctx, b); err != nil || n != 3 {
			t.Fatalf("QueueDepth = %d, %v; want 3", n, err)
		}
		before := lt.state(t, b)
		if d := mustReserve(t, lt, b, 10*time.Second); d.Allowed || !d.At.Equal(limAt(122)) {
			t.Fatalf("%+v; want refused (next slot t0+122s is beyond maxWait)", d)
		}
		if after := lt.state(t, b); after != before {
			t.Fatalf("queue refusal changed state")
		}
		// An unsent reservation given back frees its slot for the next caller.
		if err := lt.Release(ctx, b, queued[2]); err != nil {
			t.Fatal(err)
		}
		for _, d := range []Decision{queued[2], {}} { // twice, and a refusal: no-ops
			if err := lt.Release(ctx, b, d); err != nil {
				t.Fatalf("Release(%+v): %v", d, err)
			}
		}
		if n, _ := lt.QueueDepth(ctx, b); n != 2 {
			t.Fatalf("QueueDepth after Release = %d, want 2", n)
		}
		if d := mustReserve(t, lt, b, 2*time.Minute); !d.Allowed || !d.At.Equal(limAt(63)) {
			t.Fatalf("after Release %+v; want the freed slot t0+63s", d)
		}
		// A refuse-mode caller does not jump the queue.
		clk.Set(limAt(62.5))
		if d := mustReserve(t, lt, b, 0); d.Allowed || !d.At.Equal(limAt(122)) {
			t.Fatalf("%+v; want refused until t0+122s behind the queue", d)
		}
	})

	t.Run("ReleasedSlotBeforeLaterReservation", func(t *testing.T) {
		// Releasing middle reservations lets a newcomer take a slot before
		// a later reservation; the windows must still hold.
		clk := newLimClock()
		lim := Limits{PerMinute: 2, PerHour: 100}
		lt := open(t, lim, clk)
		kept := map[string]time.Time{}
		var ds []Decision
		for _, want := range []float64{0, 0, 61, 61, 122} {
			d := mustReserve(t, lt, b, 5*time.Minute)
			if !d.Allowed || !d.At.Equal(limAt(want)) {
				t.Fatalf("%+v; want slot t0+%vs", d, want)
			}
			ds = append(ds, d)
			kept[d.Token] = d.At
		}
		for _, d := range ds[2:4] {
			if err := lt.Release(ctx, b, d); err != nil {
				t.Fatal(err)
			}
			delete(kept, d.Token)
		}
		clk.Set(limAt(1))
		for _, want := range []float64{61, 122, 183} {
			d := mustReserve(t, lt, b, 5*time.Minute)
			if !d.Allowed || !d.At.Equal(limAt(want)) {
				t.Fatalf("%+v; want slot t0+%vs", d, want)
			}
			kept[d.Token] = d.At
		}
		checkWindows(t, kept, lim)
	})

	t.Run("BlockSharedByReplicas", func(t *testing.T) {
		clk := newLimClock()
		lt := open(t, Limits{PerMinute: 100, PerHour: 1500}, clk)
		other := lt.replica(t)
		if err := lt.Block(ctx, b, limAt(7)); err != nil {
			t.Fatal(err)
		}
		if err := lt.Block(ctx, b, limAt(3)); err != nil { // never shortens
			t.Fatal(err)
		}
		if err := lt.Block(ctx, b, limAt(-1)); err != nil { // in the past: no-op
			t.Fatal(err)
		}
		clk.Set(limAt(5))
		if d := mustReserve(t, other, b, 0); d.Allowed || !d.At.Equal(limAt(7)) {
			t.Fatalf("other replica: %+v; want refused until the block ends at t0+7s", d)
		}
		if d := mustReserve(t, other, "unisolate", 0); !d.Allowed {
			t.Fatalf("other budget: %+v; want admitted (blocks are per budget)", d)
		}
		if d := mustReserve(t, other, b, 5*time.Second); !d.Allowed || !d.At.Equal(limAt(7)) {
			t.Fatalf("queued: %+v; want slot at the end of the block", d)
		}
		clk.Set(limAt(7))
		if d := mustReserve(t, lt, b, 0); !d.Allowed {
			t.Fatalf("after the block: %+v; want admitted", d)
		}
	})

	t.Run("ClockStepsBack", func(t *testing.T) {
		clk := newLimClock()
		lt := open(t, Limits{PerMinute: 2, PerHour: 100}, clk)
		clk.Set(limAt(100))
		mustReserve(t, lt, b, 0)
		mustReserve(t, lt, b, 0)
		clk.Set(limAt(50)) // e.g. failover to a host whose clock is behind
		// Time does not run back: the wait is still 61 s from the latest
		// time seen (t0+100s), not from the stepped-back clock.
		if d := mustReserve(t, lt, b, 0); d.Allowed || !d.At.Equal(limAt(50+61)) {
			t.Fatalf("%+v; want refused for 61s", d)
		}
		if d := mustReserve(t, lt, b, 200*time.Second); !d.Allowed || !d.At.Equal(limAt(50+61)) {
			t.Fatalf("%+v; want queued 61s ahead", d)
		}
		if n, err := lt.QueueDepth(ctx, b); err != nil || n != 1 {
			t.Fatalf("QueueDepth = %d, %v; want 1", n, err)
		}
	})

	t.Run("InvalidBudget", func(t *testing.T) {
		lt := open(t, Limits{}, newLimClock())
		for _, name := range []string{"", "a{b", "a}b"} {
			_, err := lt.Reserve(ctx, name, 0)
			if err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("Reserve(%q) error = %v; want a usage error, not ErrUnavailable", name, err)
			}
		}
	})

	t.Run("RandomArrivals", func(t *testing.T) {
		// Property: for every admitted slot s, (s−T, s] holds ≤ L admitted
		// (unreleased) slots, for both windows; admissions respect maxWait;
		// refusals point beyond maxWait; and every decision equals the memory
		// twin's (the reference model) on the same clock.
		lim := Limits{PerMinute: 5, PerHour: 12, Minute: 10 * time.Second, Hour: 60 * time.Second}
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 42))
		clk := newLimClock()
		lt := open(t, lim, clk)
		ref := NewMemoryLimiter(LimiterConfig{Limits: lim, Now: clk.Now})
		kept := map[string]time.Time{}
		var tokens []string
		for i := range 600 {
			switch rng.IntN(4) {
			case 0: // same µs
			case 1:
				clk.Advance(time.Duration(rng.IntN(1000)) * time.Microsecond)
			default:
				clk.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
			}
			if len(tokens) > 0 && rng.IntN(8) == 0 {
				tok := tokens[rng.IntN(len(tokens))]
				if s, ok := kept[tok]; ok && s.After(clk.Now()) { // only unsent reservations
					d := Decision{Allowed: true, Token: tok}
					if err := lt.Release(ctx, b, d); err != nil {
						t.Fatal(err)
					}
					if err := ref.Release(ctx, b, d); err != nil {
						t.Fatal(err)
					}
					delete(kept, tok)
				}
			}
			var maxWait time.Duration
			if rng.IntN(2) == 0 {
				maxWait = time.Duration(rng.IntN(30_000)) * time.Millisecond
			}
			now := clk.Now()
			d := mustReserve(t, lt, b, maxWait)
			want, _ := ref.Reserve(ctx, b, maxWait)
			if d != want {
				t.Fatalf("step %d: %+v; the reference model says %+v", i, d, want)
			}
			if d.Allowed {
				if d.At.Before(now) || d.At.After(now.Add(maxWait)) {
					t.Fatalf("step %d: admitted at %v, outside [now, now+%v]", i, d.At.Sub(now), maxWait)
				}
				kept[d.Token] = d.At
				tokens = append(tokens, d.Token)
			} else if !d.At.After(now.Add(maxWait)) {
				t.Fatalf("step %d: refused though At %v is within maxWait %v", i, d.At.Sub(now), maxWait)
			}
		}
		checkWindows(t, kept, lim)
		if len(kept) < 2*lim.PerHour {
			t.Fatalf("only %d admissions: the random walk did not exercise the limits", len(kept))
		}
	})

	t.Run("ExactUnderConcurrency", func(t *testing.T) {
		// Real clock (Redis TIME): K replicas × G goroutines fire 10× the
		// limit per round; exactly PerMinute pass per round until the hour
		// budget is spent, then none.
		const K, G = 4, 25
		lim := Limits{PerMinute: 50, PerHour: 150, Minute: time.Second, Hour: time.Minute}
		lt := open(t, lim, nil)
		reps := make([]limiterAPI, K)
		for i := range reps {
			reps[i] = lt.replica(t)
		}
		kept := map[string]time.Time{}
		for round := range 4 {
			var (
				mu       sync.Mutex
				admitted []Decision
				wg       sync.WaitGroup
				errs     = make(chan error, K*G)
			)
			start := time.Now()
			for k := range K {
				for range G {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range 10 * lim.PerMinute / (K * G) {
							d, err := reps[k].Reserve(ctx, b, 0)
							if err != nil {
								errs <- err
								return
							}
							mu.Lock()
							if d.Allowed {
								admitted = append(admitted, d)
							}
							mu.Unlock()
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if took := time.Since(start); took >= lim.Minute {
				t.Fatalf("round %d took %v, longer than the %v window: the test cannot tell exactness", round, took, lim.Minute)
			}
			want := lim.PerMinute
			if round == 3 {
				want = 0
			}
			if len(admitted) != want {
				t.Fatalf("round %d: %d admitted; want exactly %d", round, len(admitted), want)
			}
			var last time.Time
			for _, d := range admitted {
				kept[d.Token] = d.At
				if d.At.After(last) {
					last = d.At
				}
			}
			if round < 3 {
				// Wait until this round has left the minute window.
				<-time.After(time.Until(last.Add(lim.Minute)))
			}
		}
		if len(kept) != lim.PerHour {
			t.Fatalf("%d admitted in total; want exactly PerHour=%d", len(kept), lim.PerHour)
		}
		checkWindows(t, kept, lim)
	})
}

// checkWindows asserts that every trailing window ending at an admitted
// slot holds at most the limit, for both windows.
func checkWindows(t *testing.T, kept map[string]time.Time, lim Limits) {
	t.Helper()
	lim = LimiterConfig{Limits: lim}.withDefaults().Limits
	var slots []time.Time
	for _, s := range kept {
		slots = append(slots, s)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
	for _, w := range []struct {
		T time.Duration
		L int
	}{{lim.Minute, lim.PerMinute}, {lim.Hour, lim.PerHour}} {
		lo := 0
		for hi, s := range slots {
			for !slots[lo].After(s.Add(-w.T)) {
				lo++
			}
			// Equal slots after hi are in the same window too.
			end := hi
			for end+1 < len(slots) && slots[end+1].Equal(s) {
				end++
			}
			if n := end - lo + 1; n > w.L {
				t.Fatalf("window (%v−%v, %v] holds %d admissions > limit %d", s.Format(time.StampMicro), w.T, s.Format(time.StampMicro), n, w.L)
			}
		}
	}
}
