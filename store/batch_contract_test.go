package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/testclock"
)

// batchesAPI is what Batches and MemoryBatches both offer (commands
// declares the interface it consumes).
type batchesAPI interface {
	CreateBatch(ctx context.Context, b Batch, entries []BatchEntry) (Batch, error)
	GetBatch(ctx context.Context, id string) (Batch, error)
	Entries(ctx context.Context, id string) ([]BatchEntry, error)
	Running(ctx context.Context) ([]string, error)
	Forget(ctx context.Context, id string) error
	Claim(ctx context.Context, id, owner string, lease time.Duration) (BatchEntry, error)
	Extend(ctx context.Context, e BatchEntry, until time.Time) (BatchEntry, error)
	Requeue(ctx context.Context, e BatchEntry) error
	Finish(ctx context.Context, e BatchEntry, to EntryState, actionID, reason string) (BatchEntry, bool, error)
	Stop(ctx context.Context, id, by string) (Batch, bool, error)
	RecordResults(ctx context.Context, id string, rs []ActionResult) ([]BatchEntry, error)
	ClaimReply(ctx context.Context, id, name string) (bool, error)
	Ping(ctx context.Context) error
}

var (
	_ batchesAPI = (*Batches)(nil)
	_ batchesAPI = (*MemoryBatches)(nil)
)

// batchSetup makes a fresh backend with its own prefix on a new test clock;
// replica returns another instance over its own connection pool.
type batchSetup func(t *testing.T) (a batchesAPI, replica func() batchesAPI, clk *testclock.Clock)

const testLease = 30 * time.Second

// batchCase is one case of the suite: a the store, replica another client
// of the same store, clk the clock of both.
type batchCase struct {
	name string
	run  func(t *testing.T, a batchesAPI, replica func() batchesAPI, clk *testclock.Clock)
}

// batchContract is the one suite every backend passes, with
// batchResultsContract (batch_contract_results_test.go).
var batchContract = []batchCase{
	{"CreateGetEntries", bcCreateGetEntries},
	{"ConcurrentClaimsExactlyOnce", bcConcurrentClaimsExactlyOnce},
	{"FinishCountsAndDone", bcFinishCountsAndDone},
	{"ReclaimAfterLeaseOnly", bcReclaimAfterLeaseOnly},
	{"RequeueAndExtend", bcRequeueAndExtend},
	{"Stop", bcStop},
	{"AllSkippedIsDone", bcAllSkippedIsDone},
}

func runBatchContract(t *testing.T, setup batchSetup) {
	for _, c := range slices.Concat(batchContract, batchResultsContract) {
		t.Run(c.name, func(t *testing.T) {
			a, replica, clk := setup(t)
			c.run(t, a, replica, clk)
		})
	}
}

func TestBatchContract(t *testing.T) {
	cfg := func(t *testing.T, clk *testclock.Clock) BatchesConfig {
		return BatchesConfig{Prefix: testPrefix(t), Retention: time.Hour, Now: clk.Now}
	}
	t.Run("memory", func(t *testing.T) {
		runBatchContract(t, func(t *testing.T) (batchesAPI, func() batchesAPI, *testclock.Clock) {
			clk := newAPClock()
			m := NewMemoryBatches(cfg(t, clk))
			return m, func() batchesAPI { return m }, clk
		})
	})
	t.Run("redis", func(t *testing.T) {
		runBatchContract(t, func(t *testing.T) (batchesAPI, func() batchesAPI, *testclock.Clock) {
			clk := newAPClock()
			c := cfg(t, clk)
			return NewBatches(testRedis(t), c), func() batchesAPI { return NewBatches(testRedis(t), c) }, clk
		})
	})
	t.Run("cluster", func(t *testing.T) {
		runBatchContract(t, func(t *testing.T) (batchesAPI, func() batchesAPI, *testclock.Clock) {
			clk := newAPClock()
			c := cfg(t, clk)
			return NewBatches(testCluster(t), c), func() batchesAPI { return NewBatches(testCluster(t), c) }, clk
		})
	})
}

func bcBatch() Batch {
	return Batch{RequestID: "r-9", Command: Isolate, IsolationType: "Full", Comment: "outbreak | tab\there",
		Requester: "U0REQ", Approvers: []string{"U0MGR", "U0MGR2"}}
}

func bcEntries(n int) []BatchEntry {
	out := make([]BatchEntry, n)
	for i := range out {
		out[i] = BatchEntry{MachineID: apMachine(i), HostName: fmt.Sprintf("ws-%03d.corp", i)}
	}
	return out
}

func bcCreate(t *testing.T, a batchesAPI, entries []BatchEntry) Batch {
	t.Helper()
	b, err := a.CreateBatch(t.Context(), bcBatch(), entries)
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	return b
}

func bcGet(t *testing.T, a batchesAPI, id string) Batch {
	t.Helper()
	b, err := a.GetBatch(t.Context(), id)
	if err != nil {
		t.Fatalf("GetBatch: %v", err)
	}
	return b
}

func bcClaim(t *testing.T, a batchesAPI, id, owner string) BatchEntry {
	t.Helper()
	e, err := a.Claim(t.Context(), id, owner, testLease)
	if err != nil {
		t.Fatalf("Claim by %s: %v", owner, err)
	}
	return e
}

func bcCreateGetEntries(t *testing.T, a batchesAPI, _ func() batchesAPI, clk *testclock.Clock) {
	in := bcEntries(4)
	in[2].State, in[2].Reason = EntrySkipped, "already\nisolated"
	b := bcCreate(t, a, in)
	want := BatchCounts{Total: 4, Queued: 3, Skipped: 1}
	got := bcGet(t, a, b.ID)
	if got.Counts != want || got.State != BatchRunning || got.ID != b.ID || !got.CreatedAt.Equal(clk.Now().Truncate(time.Microsecond)) {
		t.Fatalf("GetBatch = %+v; want counts %+v, running, created at the clock", got, want)
	}
	if got.Comment != bcBatch().Comment || !slices.Equal(got.Approvers, bcBatch().Approvers) || got.RequestID != "r-9" || got.IsolationType != "Full" {
		t.Errorf("fields did not round-trip: %+v", got)
	}
	es, err := a.Entries(t.Context(), b.ID)
	if err != nil || len(es) != 4 {
		t.Fatalf("Entries = %v, %v", es, err)
	}
	for i, e := range es {
		wantState := EntryQueued
		if i == 2 {
			wantState = EntrySkipped
		}
		if e.N != i+1 || e.MachineID != apMachine(i) || e.State != wantState || e.Batch != b.ID {
			t.Errorf("entry %d = %+v", i, e)
		}
	}
	if es[2].Reason != "already isolated" {
		t.Errorf("skipped reason = %q, want it on one line", es[2].Reason)
	}
	if ids, _ := a.Running(t.Context()); !slices.Contains(ids, b.ID) {
		t.Errorf("Running = %v, want %s", ids, b.ID)
	}
	if _, err := a.GetBatch(t.Context(), "b-999999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetBatch(unknown) = %v, want ErrNotFound", err)
	}
}

func bcConcurrentClaimsExactlyOnce(t *testing.T, a batchesAPI, replica func() batchesAPI, _ *testclock.Clock) {
	const n = 40
	b := bcCreate(t, a, bcEntries(n))
	var mu sync.Mutex
	got := map[int]string{}
	var wg sync.WaitGroup
	for r := range 4 {
		api := replica()
		owner := fmt.Sprintf("replica-%d", r)
		wg.Go(func() {
			for {
				e, err := api.Claim(context.Background(), b.ID, owner, testLease)
				if errors.Is(err, ErrBatchEmpty) {
					return
				}
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := got[e.N]; dup {
					t.Errorf("entry %d claimed by %s and %s", e.N, prev, owner)
				}
				got[e.N] = owner
				mu.Unlock()
				if e.Owner != owner || e.State != EntryClaimed || e.Attempt != 1 || e.Reclaimed {
					t.Errorf("claimed entry = %+v", e)
				}
			}
		})
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("%d entries claimed, want %d", len(got), n)
	}
	if c := bcGet(t, a, b.ID).Counts; c.Claimed != n || c.Queued != 0 {
		t.Errorf("counts after claiming all = %+v", c)
	}
}

func bcFinishCountsAndDone(t *testing.T, a batchesAPI, _ func() batchesAPI, _ *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(3))
	ctx := t.Context()
	outcomes := []EntryState{EntrySent, EntryFailed, EntrySkipped}
	for i, to := range outcomes {
		e := bcClaim(t, a, b.ID, "r1")
		out, finished, err := a.Finish(ctx, e, to, "act-"+e.Marker(), "why "+to.String())
		if err != nil {
			t.Fatalf("Finish %s: %v", to, err)
		}
		if finished != (i == len(outcomes)-1) || out.State != to || out.Owner != "" {
			t.Errorf("Finish %s = %+v, finished %v", to, out, finished)
		}
		if _, _, err := a.Finish(ctx, e, EntrySent, "x", ""); !errors.Is(err, ErrLostClaim) {
			t.Errorf("second Finish = %v, want ErrLostClaim", err)
		}
	}
	got := bcGet(t, a, b.ID)
	if want := (BatchCounts{Total: 3, Sent: 1, Failed: 1, Skipped: 1}); got.Counts != want || got.State != BatchDone || !got.Finished() {
		t.Errorf("batch = %+v (%s); want counts %+v, done", got.Counts, got.State, want)
	}
	if _, err := a.Claim(ctx, b.ID, "r1", testLease); !errors.Is(err, ErrBatchClosed) {
		t.Errorf("Claim on a done batch = %v, want ErrBatchClosed", err)
	}
	if ids, _ := a.Running(ctx); slices.Contains(ids, b.ID) {
		t.Errorf("Running still lists the done batch: %v", ids)
	}
	es, _ := a.Entries(ctx, b.ID)
	if es[0].ActionID != "act-"+es[0].Marker() || es[1].Reason != "why failed" {
		t.Errorf("entries = %+v", es)
	}
}

func (s EntryState) String() string { return string(s) }

func bcReclaimAfterLeaseOnly(t *testing.T, a batchesAPI, replica func() batchesAPI, clk *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(2))
	ctx := t.Context()
	first := bcClaim(t, a, b.ID, "dead")
	other := replica()
	// Before the lease runs out the other replica gets the next one.
	if e := bcClaim(t, other, b.ID, "alive"); e.N == first.N || e.Reclaimed {
		t.Fatalf("claim before lease end = %+v", e)
	} else if _, _, err := other.Finish(ctx, e, EntrySent, "a1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Claim(ctx, b.ID, "alive", testLease); !errors.Is(err, ErrBatchEmpty) {
		t.Fatalf("Claim while the only open entry is leased = %v, want ErrBatchEmpty", err)
	}
	clk.Advance(testLease - time.Microsecond)
	if _, err := other.Claim(ctx, b.ID, "alive", testLease); !errors.Is(err, ErrBatchEmpty) {
		t.Fatalf("Claim 1 µs before lease end = %v, want ErrBatchEmpty", err)
	}
	clk.Advance(time.Microsecond)
	re := bcClaim(t, other, b.ID, "alive")
	if re.N != first.N || !re.Reclaimed || re.Attempt != 2 || re.Owner != "alive" {
		t.Fatalf("reclaim = %+v; want entry %d, reclaimed, attempt 2", re, first.N)
	}
	if _, _, err := a.Finish(ctx, first, EntrySent, "late", ""); !errors.Is(err, ErrLostClaim) {
		t.Errorf("dead owner's Finish after reclaim = %v, want ErrLostClaim", err)
	}
	stale := first
	stale.Owner = "alive" // same owner, earlier claim
	if _, _, err := other.Finish(ctx, stale, EntrySent, "x", ""); !errors.Is(err, ErrLostClaim) {
		t.Errorf("Finish of an earlier claim = %v, want ErrLostClaim", err)
	}
	if _, finished, err := other.Finish(ctx, re, EntrySent, "a2", ""); err != nil || !finished {
		t.Errorf("Finish of the reclaim = %v, finished %v", err, finished)
	}
}

func bcRequeueAndExtend(t *testing.T, a batchesAPI, _ func() batchesAPI, clk *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(3))
	ctx := t.Context()
	e := bcClaim(t, a, b.ID, "r1")
	if err := a.Requeue(ctx, e); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	if c := bcGet(t, a, b.ID).Counts; c.Queued != 3 || c.Claimed != 0 {
		t.Errorf("counts after requeue = %+v", c)
	}
	again := bcClaim(t, a, b.ID, "r1")
	if again.N != e.N || again.Reclaimed || again.Attempt != 2 {
		t.Fatalf("claim after requeue = %+v; want entry %d first, not reclaimed", again, e.N)
	}
	if err := a.Requeue(ctx, e); !errors.Is(err, ErrLostClaim) {
		t.Errorf("Requeue of an old claim = %v, want ErrLostClaim", err)
	}
	ext, err := a.Extend(ctx, again, clk.Now().Add(3*testLease))
	if err != nil || !ext.LeaseUntil.Equal(clk.Now().Add(3*testLease).Truncate(time.Microsecond)) {
		t.Fatalf("Extend = %+v, %v", ext, err)
	}
	clk.Advance(2 * testLease)
	for range 2 {
		e := bcClaim(t, a, b.ID, "r2")
		if e.N == again.N {
			t.Fatalf("extended entry reclaimed before its new lease ended")
		}
		if _, _, err := a.Finish(ctx, e, EntrySent, "a", ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Claim(ctx, b.ID, "r2", testLease); !errors.Is(err, ErrBatchEmpty) {
		t.Fatalf("Claim before the extended lease ends = %v, want ErrBatchEmpty", err)
	}
	clk.Advance(testLease)
	if e := bcClaim(t, a, b.ID, "r2"); e.N != again.N || !e.Reclaimed {
		t.Fatalf("claim after the extended lease = %+v; want entry %d reclaimed", e, again.N)
	}
}
