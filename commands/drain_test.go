package commands

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/store"
)

// TestDrainExactlyOnceAtTheLimit is issue 11's execution in small: two
// replicas drain one batch through the real MDE client against the fake
// MDE enforcing both windows; one replica dies right after a call reached
// MDE and before it recorded it. Every machine gets exactly one isolate
// call, MDE never answers 429, and the dead replica's entry is reconciled
// by its marker (no second call). BenchmarkDrain measures the figures.
func TestDrainExactlyOnceAtTheLimit(t *testing.T) {
	const n = 40
	// The margin is wide (a quarter of the short window) because this
	// test runs under -race beside other packages' tests, where the delay
	// from the limiter's stamp to MDE's arrival varies by tens of ms;
	// BenchmarkDrain measures the pace with a margin near production's proportion.
	rig := newDrainRig(t, rigOptions{machines: n, replicas: 2, killAt: 16, margin: 250 * time.Millisecond,
		limit: fakemde.Limit{Short: fakemde.Window{Calls: 8, Length: time.Second}, Long: fakemde.Window{Calls: 24, Length: 4 * time.Second}}})
	b := rig.start()
	done := rig.wait(b.ID, n, 45*time.Second)
	if want := (store.BatchCounts{Total: n, Sent: n}); done.Counts != want || done.State != store.BatchDone {
		t.Errorf("batch = %+v (%s); want %+v, done", done.Counts, done.State, want)
	}
	if !rig.replicas[0].def.killed.Load() {
		t.Fatal("replica 0 was never killed; the test did not exercise a crash")
	}
	f := rig.figures()
	if f.Throttled != 0 {
		t.Errorf("MDE answered %d 429s; want 0", f.Throttled)
	}
	for _, m := range rig.machines {
		if f.PerMachine[m] != 1 {
			t.Errorf("machine %s got %d isolate calls; want exactly 1", m, f.PerMachine[m])
		}
	}
	entries, err := rig.replicas[1].drain.Entries(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	reconciled := 0
	for _, e := range entries {
		if e.State != store.EntrySent || e.ActionID == "" {
			t.Errorf("entry %s = %+v; want sent with its action", e.Marker(), e)
		}
		if e.Attempt > 1 {
			reconciled++
		}
	}
	if reconciled != 1 {
		t.Errorf("%d entries were claimed more than once; want exactly the dead replica's one", reconciled)
	}
	// Every call carries its entry's marker first.
	for _, r := range rig.mde.Requests(fakemde.OpIsolate) {
		if !strings.Contains(r.Body, `"Comment":"[isolate-bot b-1/`) {
			t.Errorf("isolate call without the entry marker first: %s", r.Body)
		}
	}
}

// TestDrainInteractiveFirst: a single request reserves with a positive
// maxWait (FIFO) while the drain only takes free slots, so the interactive
// call gets the next free slot even while a batch saturates the budget.
func TestDrainInteractiveFirst(t *testing.T) {
	rig := newDrainRig(t, rigOptions{machines: 12, replicas: 1, margin: 250 * time.Millisecond,
		limit: fakemde.Limit{Short: fakemde.Window{Calls: 2, Length: time.Second}, Long: fakemde.Window{Calls: 100, Length: time.Minute}}})
	b := rig.start()
	if err := rig.mde.WaitCount(fakemde.OpIsolate, 3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	svc := rig.replicas[0].svc
	ticket, err := svc.d.Gate.Reserve(context.Background(), "isolate")
	if err != nil {
		t.Fatal(err)
	}
	defer ticket.Release()
	// The batch keeps the budget full; the interactive slot is the next
	// free one, at most one window away, and no batch call takes it.
	if wait := time.Until(ticket.At); wait > time.Second+300*time.Millisecond {
		t.Errorf("interactive slot %v away; want within one window", wait)
	}
	if err := ticket.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	rig.wait(b.ID, 12, 30*time.Second)
	if f := rig.figures(); f.Throttled != 0 {
		t.Errorf("%d 429s with an interactive call in the middle; want 0", f.Throttled)
	}
}

// TestDrainStop: a stopped batch sends nothing more; what was sent stays
// sent, the rest is counted as not sent.
func TestDrainStop(t *testing.T) {
	rig := newDrainRig(t, rigOptions{machines: 10, replicas: 2, margin: 50 * time.Millisecond,
		limit: fakemde.Limit{Short: fakemde.Window{Calls: 2, Length: time.Second}, Long: fakemde.Window{Calls: 100, Length: time.Minute}}})
	b := rig.start()
	if err := rig.mde.WaitCount(fakemde.OpIsolate, 2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := rig.replicas[1].drain.StopBatch(context.Background(), b.ID, boss)
	if err != nil || st.State != store.BatchStopped {
		t.Fatalf("StopBatch = %+v, %v", st, err)
	}
	done := rig.wait(b.ID, 0, 10*time.Second)
	sent := rig.mde.Count(fakemde.OpIsolate)
	if done.Counts.Sent != sent || done.Counts.Queued != 10-sent || sent > 4 {
		t.Errorf("stopped batch %+v with %d calls sent; want the unsent rest queued", done.Counts, sent)
	}
	if _, err := rig.replicas[0].drain.StopBatch(context.Background(), "b-404", boss); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("StopBatch(unknown) = %v, want ErrNotFound", err)
	}
	h, err := rig.replicas[0].svc.d.Approvals.History(context.Background(), "r-1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(h, func(e store.Event) bool { return e.Type == store.EventCancelled && e.Actor == boss }) {
		t.Errorf("no audit event for the stop in %+v", h)
	}
}
