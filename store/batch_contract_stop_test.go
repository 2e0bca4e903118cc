package store

// The batch contract's Stop cases (batchContract in batch_contract_test.go).

import (
	"errors"
	"testing"

	"github.com/soc/isolate-bot/internal/testclock"
)

func bcStop(t *testing.T, a batchesAPI, _ func() batchesAPI, clk *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(4))
	ctx := t.Context()
	dead := bcClaim(t, a, b.ID, "dead")
	st, stopped, err := a.Stop(ctx, b.ID, "U0MGR")
	if err != nil || !stopped || st.State != BatchStopped || st.StoppedBy != "U0MGR" || st.Counts.Queued != 3 || st.Counts.Claimed != 1 {
		t.Fatalf("Stop = %+v, %v, %v", st, stopped, err)
	}
	if _, again, _ := a.Stop(ctx, b.ID, "U0MGR"); again {
		t.Errorf("second Stop reported stopping it again")
	}
	if _, err := a.Claim(ctx, b.ID, "r1", testLease); !errors.Is(err, ErrBatchEmpty) {
		t.Fatalf("Claim while stopped with a live claim = %v, want ErrBatchEmpty", err)
	}
	clk.Advance(testLease)
	re := bcClaim(t, a, b.ID, "r1")
	if re.N != dead.N || !re.Reclaimed {
		t.Fatalf("stopped batch must still hand out a dead claim to reconcile; got %+v", re)
	}
	if _, finished, err := a.Finish(ctx, re, EntrySkipped, "", "stopped"); err != nil || finished {
		t.Fatalf("Finish = %v, finished %v (a stopped batch is not done)", err, finished)
	}
	if _, err := a.Claim(ctx, b.ID, "r1", testLease); !errors.Is(err, ErrBatchClosed) {
		t.Errorf("Claim on a stopped batch without claims = %v, want ErrBatchClosed", err)
	}
	got := bcGet(t, a, b.ID)
	if !got.Finished() || got.State != BatchStopped || got.Counts.Queued != 3 || got.Counts.Skipped != 1 {
		t.Errorf("stopped batch = %+v", got)
	}
	if _, _, err := a.Stop(ctx, "b-999999", "U0MGR"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stop(unknown) = %v, want ErrNotFound", err)
	}
}

func bcAllSkippedIsDone(t *testing.T, a batchesAPI, _ func() batchesAPI, _ *testclock.Clock) {
	in := bcEntries(2)
	for i := range in {
		in[i].State, in[i].Reason = EntrySkipped, "already isolated"
	}
	b := bcCreate(t, a, in)
	if got := bcGet(t, a, b.ID); got.State != BatchDone || got.Counts.Skipped != 2 {
		t.Errorf("all-skipped batch = %+v", got)
	}
	if _, err := a.CreateBatch(t.Context(), bcBatch(), nil); err == nil {
		t.Errorf("CreateBatch without entries succeeded")
	}
}
