package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/soc/isolate-bot/internal/testclock"
)

// batchResultsContract: following sent entries to their end (RecordResults)
// and the one-off replies (ClaimReply), on every backend.
var batchResultsContract = []batchCase{
	{"ResultsRecorded", bcResultsRecorded},
	{"ResultsFinalNeverChanges", bcResultsFinalNeverChanges},
	{"ResultsExactlyOnce", bcResultsExactlyOnce},
	{"ResultsIgnored", bcResultsIgnored},
	{"ResultsAfterDoneAndGone", bcResultsAfterDoneAndGone},
	{"ResultsMany", bcResultsMany},
	{"ClaimReplyOnce", bcClaimReplyOnce},
}

// bcAction is the action id bcSend records for entry n.
func bcAction(n int) string { return fmt.Sprintf("act-%d", n) }

// bcSend claims the next k entries of batch id and finishes them sent with
// bcAction of their position.
func bcSend(t *testing.T, a batchesAPI, id string, k int) {
	t.Helper()
	for range k {
		e := bcClaim(t, a, id, "r1")
		if _, _, err := a.Finish(t.Context(), e, EntrySent, bcAction(e.N), ""); err != nil {
			t.Fatalf("Finish %s sent: %v", e.Marker(), err)
		}
	}
}

func bcRecord(t *testing.T, a batchesAPI, id string, rs ...ActionResult) []int {
	t.Helper()
	got, err := a.RecordResults(t.Context(), id, rs)
	if err != nil {
		t.Fatalf("RecordResults: %v", err)
	}
	ns := make([]int, len(got))
	for i, e := range got {
		ns[i] = e.N
		if e.Batch != id || !FinalStatus(e.Status) || e.State != EntrySent {
			t.Errorf("returned entry %+v; want a sent entry of %s with a final status", e, id)
		}
	}
	return ns
}

func res(n int, status, detail string) ActionResult {
	return ActionResult{N: n, ActionID: bcAction(n), Status: status, Detail: detail}
}

func bcStatuses(t *testing.T, a batchesAPI, id string) (status, reason []string) {
	t.Helper()
	es, err := a.Entries(t.Context(), id)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	for _, e := range es {
		status, reason = append(status, e.Status), append(reason, e.Reason)
	}
	return status, reason
}

func bcResultsRecorded(t *testing.T, a batchesAPI, _ func() batchesAPI, _ *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(5))
	bcSend(t, a, b.ID, 4)
	got := bcRecord(t, a, b.ID, res(1, "InProgress", ""), res(2, "Succeeded", "ignored when succeeded"),
		res(3, "Failed", "device\noffline   now"), res(4, "Pending", "ignored when not final"))
	if !slices.Equal(got, []int{2, 3}) {
		t.Errorf("became final = %v, want [2 3]", got)
	}
	c := bcGet(t, a, b.ID).Counts
	if want := (BatchCounts{Total: 5, Queued: 1, Sent: 4, Succeeded: 1, Unsuccessful: 1}); c != want || c.Settled() {
		t.Errorf("counts = %+v (settled %v); want %+v, not settled", c, c.Settled(), want)
	}
	st, why := bcStatuses(t, a, b.ID)
	if !slices.Equal(st, []string{"InProgress", "Succeeded", "Failed", "Pending", ""}) ||
		!slices.Equal(why, []string{"", "", "device offline now", "", ""}) {
		t.Errorf("statuses %q, reasons %q", st, why)
	}
	got = bcRecord(t, a, b.ID, res(1, "TimeOut", ""), res(4, "Cancelled", "cancelled by U0X"))
	c = bcGet(t, a, b.ID).Counts
	if !slices.Equal(got, []int{1, 4}) || c.Succeeded != 1 || c.Unsuccessful != 3 || !c.Settled() {
		t.Errorf("after the last two: became final %v, counts %+v (settled %v)", got, c, c.Settled())
	}
	if st, why = bcStatuses(t, a, b.ID); st[0] != "TimeOut" || why[0] != "" || st[3] != "Cancelled" || why[3] != "cancelled by U0X" {
		t.Errorf("statuses %q, reasons %q", st, why)
	}
}

func bcResultsFinalNeverChanges(t *testing.T, a batchesAPI, _ func() batchesAPI, _ *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(2))
	bcSend(t, a, b.ID, 2)
	if got := bcRecord(t, a, b.ID, res(1, "Succeeded", "")); !slices.Equal(got, []int{1}) {
		t.Fatalf("first final result returned %v, want [1]", got)
	}
	for _, again := range [][]ActionResult{
		{res(1, "Succeeded", "")},
		{res(1, "Failed", "late"), res(1, "Pending", "")},
	} {
		if got := bcRecord(t, a, b.ID, again...); len(got) != 0 {
			t.Errorf("RecordResults(%+v) after final returned %v, want nothing", again, got)
		}
	}
	// Within one call too: the first final status wins and is returned once.
	got := bcRecord(t, a, b.ID, res(2, "InProgress", ""), res(2, "Failed", "offline"), res(2, "Succeeded", ""), res(2, "Failed", "x"))
	if !slices.Equal(got, []int{2}) {
		t.Errorf("one call with several finals returned %v, want [2]", got)
	}
	c := bcGet(t, a, b.ID).Counts
	st, why := bcStatuses(t, a, b.ID)
	if c.Succeeded != 1 || c.Unsuccessful != 1 || !slices.Equal(st, []string{"Succeeded", "Failed"}) || !slices.Equal(why, []string{"", "offline"}) {
		t.Errorf("counts %+v, statuses %q, reasons %q; want the first final status kept", c, st, why)
	}
}

func bcResultsExactlyOnce(t *testing.T, a batchesAPI, replica func() batchesAPI, _ *testclock.Clock) {
	const n, writers = 20, 8
	b := bcCreate(t, a, bcEntries(n))
	bcSend(t, a, b.ID, n)
	var rs []ActionResult
	for i := 1; i <= n; i++ {
		rs = append(rs, res(i, "InProgress", ""))
	}
	for i := 1; i <= n; i++ {
		status := "Succeeded"
		if i%2 == 0 {
			status = "Failed"
		}
		rs = append(rs, res(i, status, "offline"))
	}
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for range writers {
		api := replica()
		wg.Go(func() {
			got, err := api.RecordResults(context.Background(), b.ID, rs)
			if err != nil {
				t.Errorf("RecordResults: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range got {
				seen[e.N]++
			}
		})
	}
	wg.Wait()
	for i := 1; i <= n; i++ {
		if seen[i] != 1 {
			t.Errorf("entry %d returned %d times, want exactly once", i, seen[i])
		}
	}
	if c := bcGet(t, a, b.ID).Counts; c.Succeeded != n/2 || c.Unsuccessful != n/2 || !c.Settled() {
		t.Errorf("counts = %+v; want %d succeeded, %d unsuccessful", c, n/2, n/2)
	}
}

func bcResultsIgnored(t *testing.T, a batchesAPI, _ func() batchesAPI, _ *testclock.Clock) {
	in := bcEntries(5)
	in[0].State, in[0].Reason = EntrySkipped, "not found"
	b := bcCreate(t, a, in)
	ctx := t.Context()
	bcSend(t, a, b.ID, 1) // entry 2
	e3 := bcClaim(t, a, b.ID, "r1")
	if _, _, err := a.Finish(ctx, e3, EntryFailed, bcAction(3), "refused"); err != nil {
		t.Fatal(err)
	}
	bcClaim(t, a, b.ID, "r1") // entry 4 stays claimed, 5 queued
	ignored := []ActionResult{
		res(1, "Succeeded", ""), res(3, "Succeeded", ""), res(4, "Succeeded", ""), res(5, "Failed", "x"),
		res(0, "Succeeded", ""), res(-1, "Succeeded", ""), res(99, "Succeeded", ""),
		{N: 2, ActionID: "act-other", Status: "Succeeded"}, {N: 2, Status: "Succeeded"}, {N: 2, ActionID: bcAction(2)},
	}
	if got := bcRecord(t, a, b.ID, ignored...); len(got) != 0 {
		t.Errorf("results for no sent entry of that action returned %v", got)
	}
	st, why := bcStatuses(t, a, b.ID)
	if !slices.Equal(st, []string{"", "", "", "", ""}) || !slices.Equal(why, []string{"not found", "", "refused", "", ""}) {
		t.Errorf("statuses %q, reasons %q; want all untouched", st, why)
	}
	if c := bcGet(t, a, b.ID).Counts; c.Succeeded != 0 || c.Unsuccessful != 0 || c.Settled() {
		t.Errorf("counts = %+v; want none final and not settled", c)
	}
	if got := bcRecord(t, a, b.ID, res(2, "Succeeded", "")); !slices.Equal(got, []int{2}) {
		t.Errorf("the matching result returned %v, want [2]", got)
	}
}

func bcResultsAfterDoneAndGone(t *testing.T, a batchesAPI, _ func() batchesAPI, _ *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(2))
	bcSend(t, a, b.ID, 2)
	if got := bcRecord(t, a, b.ID); len(got) != 0 {
		t.Errorf("no results returned %v", got)
	}
	if got := bcRecord(t, a, b.ID, res(1, "Succeeded", ""), res(2, "Cancelled", "by U0X")); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("results on a done batch returned %v, want [1 2]", got)
	}
	got := bcGet(t, a, b.ID)
	if got.State != BatchDone || got.Counts.Succeeded != 1 || got.Counts.Unsuccessful != 1 || !got.Counts.Settled() {
		t.Errorf("done batch after results = %s %+v", got.State, got.Counts)
	}
	if ids, _ := a.Running(t.Context()); slices.Contains(ids, b.ID) {
		t.Errorf("results brought the done batch back to Running: %v", ids)
	}
	_, err := a.RecordResults(t.Context(), "b-999999", []ActionResult{res(1, "Succeeded", "")})
	if !errors.Is(err, ErrBatchClosed) || !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordResults(unknown) = %v, want ErrBatchClosed and ErrNotFound", err)
	}
	if ok, err := a.ClaimReply(t.Context(), "b-999999", "summary"); ok || !errors.Is(err, ErrBatchClosed) || !errors.Is(err, ErrNotFound) {
		t.Errorf("ClaimReply(unknown) = %v, %v; want false, ErrBatchClosed and ErrNotFound", ok, err)
	}
}

// bcResultsMany: more results and entries than the script reads or writes
// in one slice.
func bcResultsMany(t *testing.T, a batchesAPI, _ func() batchesAPI, _ *testclock.Clock) {
	const n = 1100
	b := bcCreate(t, a, bcEntries(n))
	bcSend(t, a, b.ID, n)
	var rs []ActionResult
	for i := 1; i <= n; i++ {
		rs = append(rs, res(i, "InProgress", ""), res(i, "Succeeded", ""))
	}
	if got := bcRecord(t, a, b.ID, rs...); len(got) != n || got[0] != 1 || got[n-1] != n {
		t.Fatalf("%d entries became final, want %d in order", len(got), n)
	}
	st, _ := bcStatuses(t, a, b.ID)
	if i := slices.IndexFunc(st, func(s string) bool { return s != "Succeeded" }); i >= 0 {
		t.Errorf("entry %d status %q, want Succeeded", i+1, st[i])
	}
	if c := bcGet(t, a, b.ID).Counts; c.Succeeded != n || !c.Settled() {
		t.Errorf("counts = %+v", c)
	}
}

func bcClaimReplyOnce(t *testing.T, a batchesAPI, replica func() batchesAPI, _ *testclock.Clock) {
	b := bcCreate(t, a, bcEntries(1))
	other := bcCreate(t, a, bcEntries(1))
	names := []string{"summary", "settled"}
	var mu sync.Mutex
	wins := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		api := replica()
		for _, name := range names {
			wg.Go(func() {
				ok, err := api.ClaimReply(context.Background(), b.ID, name)
				if err != nil {
					t.Errorf("ClaimReply %s: %v", name, err)
				}
				if ok {
					mu.Lock()
					wins[name]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for _, name := range names {
		if wins[name] != 1 {
			t.Errorf("ClaimReply(%s) won %d times, want once", name, wins[name])
		}
		if ok, err := a.ClaimReply(t.Context(), b.ID, name); ok || err != nil {
			t.Errorf("ClaimReply(%s) again = %v, %v; want false", name, ok, err)
		}
	}
	if ok, err := a.ClaimReply(t.Context(), other.ID, "summary"); !ok || err != nil {
		t.Errorf("ClaimReply on another batch = %v, %v; want true", ok, err)
	}
	if _, err := a.ClaimReply(t.Context(), b.ID, ""); err == nil {
		t.Errorf("ClaimReply without a name succeeded")
	}
	if got := bcGet(t, a, b.ID); got.State != BatchRunning || got.Counts != (BatchCounts{Total: 1, Queued: 1}) {
		t.Errorf("batch after replies = %s %+v; want unchanged", got.State, got.Counts)
	}
}
