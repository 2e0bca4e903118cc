package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// apTransitionTable: every (from, to) pair: allowed moves write exactly the
// expected record, forbidden ones return *ConflictError and change nothing;
// a stale from loses.
func apTransitionTable(t *testing.T, setup apSetup) {
	a, clk := setup(t, ApprovalsConfig{})
	exp := clk.Now().Add(time.Hour)
	i := 0
	for _, from := range apStates {
		for _, to := range apStates {
			i++
			t.Run(fmt.Sprintf("%s→%s", from, to), func(t *testing.T) {
				before := apReach(t, a, apMachine(i), exp, from)
				clk.Advance(time.Second)
				apCheckTransition(t, a, before, to, clk.Now())
			})
		}
	}
	// A stale `from` loses even if the move would be legal from it.
	r := apReach(t, a, apMachine(1000), exp, Pending)
	var ce *ConflictError
	if _, err := a.Transition(t.Context(), r.ID, Approved, Change{To: Executing}); !errors.As(err, &ce) || ce.Current.State != Pending {
		t.Errorf("Transition with stale from: %v, want conflict showing pending", err)
	}
}

// apCheckTransition moves before (as read) to `to` at time now and checks
// the outcome against Allowed: the exact new record, or a conflict that
// changed nothing.
func apCheckTransition(t *testing.T, a approvalsAPI, before Request, to State, now time.Time) {
	t.Helper()
	ctx := t.Context()
	from := before.State
	got, err := a.Transition(ctx, before.ID, from, Change{To: to, By: "U0BOSS"})
	if !Allowed(from, to) {
		var ce *ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("forbidden transition: error %v, want *ConflictError", err)
		}
		if !reflect.DeepEqual(ce.Current, before) || ce.Want != to {
			t.Errorf("conflict = {%+v, %s}, want the unchanged record and %s", ce.Current, ce.Want, to)
		}
		if after, _ := a.Get(ctx, before.ID); !reflect.DeepEqual(after, before) {
			t.Errorf("forbidden transition changed the record to %+v", after)
		}
		return
	}
	if err != nil {
		t.Fatalf("allowed transition: %v", err)
	}
	want := before
	want.State, want.Version, want.UpdatedAt = to, before.Version+1, normTime(now)
	if from == Pending && to != Pending {
		want.DecidedBy, want.DecidedAt = "U0BOSS", normTime(now)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if stored, _ := a.Get(ctx, before.ID); !reflect.DeepEqual(stored, got) {
		t.Errorf("stored %+v, returned %+v", stored, got)
	}
}

// apChangeFields: non-zero Change fields are written and zero ones leave
// values; DecidedBy/DecidedAt are set only when leaving pending.
func apChangeFields(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	exp := clk.Now().Add(time.Hour)
	r, err := a.Create(ctx, apRequest(apMachine(1), exp))
	if err != nil {
		t.Fatal(err)
	}
	// The card is posted after Create: record where.
	r, err = a.Transition(ctx, r.ID, Pending, Change{To: Pending, MessageTS: "1700000000.000100", Channel: "C0OTHER"})
	if err != nil || r.MessageTS != "1700000000.000100" || r.Channel != "C0OTHER" || r.DecidedBy != "" || r.Version != 2 {
		t.Fatalf("pending update = %+v, %v", r, err)
	}
	decided := clk.Now().Add(-time.Second)
	clk.Advance(time.Minute)
	runAt := clk.Now().Add(30 * time.Second)
	r, err = a.Transition(ctx, r.ID, Pending, Change{To: Approved, By: "U0MGR", At: decided, RunAt: runAt, CheckAt: runAt, Note: "queued"})
	if err != nil {
		t.Fatal(err)
	}
	if r.DecidedBy != "U0MGR" || !r.DecidedAt.Equal(normTime(decided)) || !r.UpdatedAt.Equal(normTime(clk.Now())) ||
		!r.RunAt.Equal(normTime(runAt)) || !r.CheckAt.Equal(normTime(runAt)) || r.Note != "queued" || r.MessageTS != "1700000000.000100" {
		t.Fatalf("approve = %+v", r)
	}
	r, err = a.Transition(ctx, r.ID, Approved, Change{To: Executing, By: "system", MachineActionID: "act-1", CheckAt: runAt.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	// Zero fields leave values; leaving a non-pending state keeps DecidedBy.
	if r.DecidedBy != "U0MGR" || r.MachineActionID != "act-1" || r.Note != "queued" || !r.RunAt.Equal(normTime(runAt)) {
		t.Fatalf("execute = %+v", r)
	}
	r, err = a.Transition(ctx, r.ID, Executing, Change{To: Done, Note: "Succeeded"})
	if err != nil || r.Note != "Succeeded" || r.MachineActionID != "act-1" || r.Version != 5 {
		t.Fatalf("done = %+v, %v", r, err)
	}
}

// apPendingPastExpiresAt: a pending request past ExpiresAt is expired by
// any Transition except to expired or cancelled, which reports the expired
// record as a conflict.
func apPendingPastExpiresAt(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	exp := clk.Now().Add(10 * time.Minute)
	cases := []struct {
		to      State
		expired bool // the call fails and the request becomes expired
	}{
		{Approved, true}, {Denied, true}, {Pending, true}, {Executing, true},
		{Expired, false}, {Cancelled, false},
	}
	ids := make([]string, len(cases))
	for i := range cases {
		r, err := a.Create(ctx, apRequest(apMachine(i), exp))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r.ID
	}
	// Just before ExpiresAt a decision still counts.
	clk.Advance(10*time.Minute - time.Microsecond)
	early, err := a.Create(ctx, apRequest(apMachine(100), exp))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transition(ctx, early.ID, Pending, Change{To: Approved, By: "U0MGR"}); err != nil {
		t.Fatalf("approve 1µs before expiry: %v", err)
	}
	clk.Advance(time.Microsecond)
	for i, c := range cases {
		id := ids[i]
		got, err := a.Transition(ctx, id, Pending, Change{To: c.to, By: "U0MGR"})
		if !c.expired {
			if err != nil || got.State != c.to {
				t.Errorf("%s past expiry: %+v, %v; want it done", c.to, got, err)
			}
			continue
		}
		var ce *ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("%s past expiry: %v, want *ConflictError", c.to, err)
		}
		cur := ce.Current
		if cur.State != Expired || cur.DecidedBy != "system" || !cur.DecidedAt.Equal(normTime(clk.Now())) || cur.Version != 2 || ce.Want != c.to {
			t.Errorf("%s past expiry: conflict %+v (want %s), want expired by system now at v2", c.to, cur, ce.Want)
		}
		if stored, _ := a.Get(ctx, id); !reflect.DeepEqual(stored, cur) {
			t.Errorf("stored %+v, conflict reported %+v", stored, cur)
		}
	}
	if due, err := a.Due(ctx, 100); err != nil || len(due) != 1 || due[0].ID != early.ID {
		t.Errorf("Due = %v, %v; want only the approved %s", apIDs(due), err, early.ID)
	}
	if n, err := a.Pending(ctx); err != nil || n != 0 {
		t.Errorf("Pending = %d, %v; want 0", n, err)
	}
}
