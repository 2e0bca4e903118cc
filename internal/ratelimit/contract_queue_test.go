package ratelimit

// Contract cases about queued reservations, Release, Block and odd clocks.

import (
	"context"
	"errors"
	"testing"
	"time"
)

func contractQueueFIFOAndRelease(t *testing.T, open openFunc) {
	ctx := context.Background()
	const b = contractBudget
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
}

func contractReleasedSlotBeforeLaterReservation(t *testing.T, open openFunc) {
	ctx := context.Background()
	const b = contractBudget
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
}

func contractBlockSharedByReplicas(t *testing.T, open openFunc) {
	ctx := context.Background()
	const b = contractBudget
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
}

func contractClockStepsBack(t *testing.T, open openFunc) {
	ctx := context.Background()
	const b = contractBudget
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
}

func contractInvalidBudget(t *testing.T, open openFunc) {
	ctx := context.Background()
	const b = contractBudget
	lt := open(t, Limits{}, newLimClock())
	for _, name := range []string{"", "a{b", "a}b"} {
		_, err := lt.Reserve(ctx, name, 0)
		if err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("Reserve(%q) error = %v; want a usage error, not ErrUnavailable", name, err)
		}
	}
}
