package ratelimit

// Contract cases under load: random arrivals against the reference model,
// concurrent replicas on the real clock, and the window invariant.

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

func contractRandomArrivals(t *testing.T, open openFunc) {
	ctx := context.Background()
	const b = contractBudget
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
	ref := NewMemory(complete(Config{Limits: lim, Now: clk.Now}))
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
				releaseBoth(t, Decision{Allowed: true, Token: tok}, lt, ref)
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
}

// releaseBoth gives d back to every limiter in ls.
func releaseBoth(t *testing.T, d Decision, ls ...limiterAPI) {
	t.Helper()
	for _, l := range ls {
		if err := l.Release(context.Background(), contractBudget, d); err != nil {
			t.Fatal(err)
		}
	}
}

func contractExactUnderConcurrency(t *testing.T, open openFunc) {
	// Real clock (Redis TIME): K replicas × G goroutines fire 10× the
	// limit per round; exactly PerMinute pass per round until the hour
	// budget is spent, then none.
	const K = 4
	lim := Limits{PerMinute: 50, PerHour: 150, Minute: time.Second, Hour: time.Minute}
	lt := open(t, lim, nil)
	reps := make([]limiterAPI, K)
	for i := range reps {
		reps[i] = lt.replica(t)
	}
	kept := map[string]time.Time{}
	for round := range 4 {
		start := time.Now()
		admitted := burst(t, reps, 25, 10*lim.PerMinute)
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
}

// burst makes n refuse-mode Reserve calls from g goroutines per replica at
// once and returns the admitted decisions.
func burst(t *testing.T, reps []limiterAPI, g, n int) []Decision {
	t.Helper()
	var (
		mu       sync.Mutex
		admitted []Decision
		wg       sync.WaitGroup
		errs     = make(chan error, len(reps)*g)
	)
	for _, rep := range reps {
		for range g {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n / (len(reps) * g) {
					d, err := rep.Reserve(context.Background(), contractBudget, 0)
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
	return admitted
}

// checkWindows asserts that every trailing window ending at an admitted
// slot holds at most the limit, for both windows.
func checkWindows(t *testing.T, kept map[string]time.Time, lim Limits) {
	t.Helper()
	lim = complete(Config{Limits: lim}).Limits
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
