package ratelimit

// The one limiter contract suite: its harness and the cases about exact
// admission. The cases run against every backend (TestLimiterContract).

import (
	"context"
	"fmt"
	"github.com/soc/isolate-bot/internal/testclock"
	"testing"
	"time"
)

// limiterAPI is Backend plus QueueDepth.
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

// limClock is the tests' one clock (internal/testclock) read at the
// limiter's resolution, µs: what the limiter stores is µs, so a test
// comparing times compares what it will read back. With Redis it also
// replaces TIME inside the scripts through the test-only override.
type limClock struct{ *testclock.Clock }

// limT0 is an arbitrary realistic start time.
var limT0 = time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)

func newLimClock() *limClock        { return &limClock{testclock.New(limT0)} }
func (c *limClock) Now() time.Time  { return time.UnixMicro(c.Clock.Now().UnixMicro()) }
func (c *limClock) Set(t time.Time) { c.Clock.Set(time.UnixMicro(t.UnixMicro())) }
func (c *limClock) micros() int64   { return c.Clock.Now().UnixMicro() }

// newLimiterFunc builds a limiter under test; clk nil means the real clock
// (Redis TIME for Redis). cfg.Prefix is already unique to the test.
type newLimiterFunc func(t testing.TB, cfg Config, clk *limClock) limiterUnderTest

func limAt(s float64) time.Time { return limT0.Add(time.Duration(s * float64(time.Second))) }

func mustReserve(t testing.TB, l limiterAPI, budget string, maxWait time.Duration) Decision {
	t.Helper()
	d, err := l.Reserve(context.Background(), budget, maxWait)
	if err != nil {
		t.Fatalf("Reserve(%s, %v): %v", budget, maxWait, err)
	}
	return d
}

// openFunc opens the limiter under test with lim and its own key prefix;
// clk nil means the real clock.
type openFunc func(t *testing.T, lim Limits, clk *limClock) limiterUnderTest

// limiterContract is the one behaviour suite every limiter passes: named
// cases, each run against every backend by runLimiterContract.
var limiterContract = []struct {
	name string
	run  func(t *testing.T, open openFunc)
}{
	{"SameMicrosecond", contractSameMicrosecond},
	{"ExactRetry", contractExactRetry},
	{"NoCrossConsumption", contractNoCrossConsumption},
	{"QueueFIFOAndRelease", contractQueueFIFOAndRelease},
	{"ReleasedSlotBeforeLaterReservation", contractReleasedSlotBeforeLaterReservation},
	{"BlockSharedByReplicas", contractBlockSharedByReplicas},
	{"ClockStepsBack", contractClockStepsBack},
	{"InvalidBudget", contractInvalidBudget},
	{"RandomArrivals", contractRandomArrivals},
	{"ExactUnderConcurrency", contractExactUnderConcurrency},
}

// runLimiterContract runs limiterContract against the limiters newLimiter
// builds.
func runLimiterContract(t *testing.T, newLimiter newLimiterFunc) {
	open := func(t *testing.T, lim Limits, clk *limClock) limiterUnderTest {
		return newLimiter(t, Config{Limits: lim, Prefix: testPrefix(t)}, clk)
	}
	for _, c := range limiterContract {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

// contractBudget is the budget the cases use.
const contractBudget = "isolate"

func contractSameMicrosecond(t *testing.T, open openFunc) {
	const b = contractBudget
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
}

func contractExactRetry(t *testing.T, open openFunc) {
	const b = contractBudget
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
}

func contractNoCrossConsumption(t *testing.T, open openFunc) {
	const b = contractBudget
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
}
