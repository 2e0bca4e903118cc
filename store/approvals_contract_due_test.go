package store

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// apDueOrderAndPendingCount: Due returns open requests with CheckAt ≤ now,
// oldest first, up to the limit; Pending counts pending requests.
func apDueOrderAndPendingCount(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	t0 := clk.Now()
	// ids r-1..r-6, ExpiresAt (= CheckAt) in seconds from t0
	offsets := []time.Duration{300, 60, 240, 120, 180, 150}
	for i, off := range offsets {
		if _, err := a.Create(ctx, apRequest(apMachine(i), t0.Add(off*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.Pending(ctx); err != nil || n != 6 {
		t.Errorf("Pending = %d, %v; want 6", n, err)
	}
	check := func(limit int, want ...string) {
		t.Helper()
		due, err := a.Due(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := apIDs(due); !reflect.DeepEqual(got, want) {
			t.Errorf("Due(%d) at +%v = %v, want %v", limit, clk.Now().Sub(t0), got, want)
		}
	}
	check(10)
	// Approved with a later CheckAt: due then; terminal: never.
	if _, err := a.Transition(ctx, "r-2", Pending, Change{To: Approved, CheckAt: t0.Add(600 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transition(ctx, "r-4", Pending, Change{To: Denied}); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.Pending(ctx); n != 4 {
		t.Errorf("Pending = %d, want 4", n)
	}
	clk.Advance(240 * time.Second) // CheckAt ≤ now is due
	check(10, "r-6", "r-5", "r-3")
	check(2, "r-6", "r-5")
	check(0)
	clk.Advance(20 * time.Minute)
	check(10, "r-6", "r-5", "r-3", "r-1", "r-2")
}

// apFirstDelivery: the first delivery of a key wins across replicas and
// concurrent redeliveries, and the key is forgotten after its ttl.
func apFirstDelivery(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	const ttl = 300 * time.Millisecond
	for i, c := range []struct {
		s    approvalsAPI
		key  string
		want bool
	}{{a, "Ev1", true}, {a, "Ev1", false}, {b, "Ev1", false}, {b, "Ev2", true}, {a, "Ev2", false}} {
		if got, err := c.s.FirstDelivery(ctx, c.key, ttl); err != nil || got != c.want {
			t.Errorf("step %d: FirstDelivery(%s) = %v, %v; want %v", i, c.key, got, err, c.want)
		}
	}
	if _, err := a.FirstDelivery(ctx, "Ev3", 0); err == nil {
		t.Error("FirstDelivery with ttl 0 succeeded")
	}
	// Concurrent redeliveries: exactly one first.
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := []approvalsAPI{a, b}[i%2].FirstDelivery(ctx, "Ev4", time.Minute); err == nil && ok {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Errorf("%d first deliveries of Ev4, want 1", firsts.Load())
	}
	clk.Advance(ttl)
	apEventually(t, "Ev1 is forgotten after its ttl", func() bool {
		ok, err := a.FirstDelivery(ctx, "Ev1", ttl)
		return err == nil && ok
	})
}

// apRetentionExpiresRecords: after Retention the record, machine index,
// history and due entry are gone and the machine is free again.
func apRetentionExpiresRecords(t *testing.T, setup apSetup) {
	ctx := t.Context()
	const retention = 400 * time.Millisecond
	a, clk := setup(t, ApprovalsConfig{Retention: retention})
	r, err := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(ctx, Event{RequestID: r.ID, Type: EventCreated}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(retention)
	apEventually(t, "the record passes Retention", func() bool {
		_, err := a.Get(ctx, r.ID)
		return errors.Is(err, ErrNotFound)
	})
	apEventually(t, "the machine index and history pass Retention", func() bool {
		_, err := a.ForMachine(ctx, apMachine(1))
		h, herr := a.History(ctx, r.ID)
		return errors.Is(err, ErrNotFound) && herr == nil && len(h) == 0
	})
	if due, err := a.Due(ctx, 10); err != nil || len(due) != 0 {
		t.Errorf("Due after retention = %v, %v; want none", apIDs(due), err)
	}
	if _, err := a.Transition(ctx, r.ID, Pending, Change{To: Cancelled}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Transition after retention: %v, want ErrNotFound", err)
	}
	// The machine is free again.
	if _, err := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Hour))); err != nil {
		t.Errorf("Create after retention: %v", err)
	}
}
