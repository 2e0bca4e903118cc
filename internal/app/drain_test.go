package app

import (
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/store"
)

// TestAppDrainsBatches: the app runs outbreak mode's drain loop beside the
// scheduler: a batch started through App.Drainer gets one isolate call per
// machine at the fake MDE (through the real client, on Redis), and Run
// still shuts down cleanly with the loop in it.
func TestAppDrainsBatches(t *testing.T) {
	w := newWorld(t)
	a, ctx, cancel, done := w.running(t, nil)
	defer cancel()
	b, err := a.Drainer().StartBatch(ctx, store.Batch{RequestID: "r-1", Command: store.Isolate, IsolationType: "Full",
		Comment: "outbreak", Requester: "U0ALICE", Approvers: []string{"U0BOB"}},
		[]store.BatchEntry{{MachineID: defender.SimWeb01}, {MachineID: defender.SimDB01}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		p, err := a.Drainer().Progress(ctx, b.ID)
		if err == nil && p.Finished() {
			if p.Counts.Sent != 2 || p.State != store.BatchDone {
				t.Fatalf("batch = %+v (%s); want both sent", p.Counts, p.State)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not finished within %s: %+v, %v", wait, p.Counts, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	cancel()
	runReturned(t, done)
	if n := w.mde.Count(fakemde.OpIsolate); n != 2 {
		t.Errorf("MDE got %d isolate calls; want 2", n)
	}
}
