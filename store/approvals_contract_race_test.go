package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// apConcurrentApproveOneWins: ten clicks on Approve over two replicas: one
// decision, every loser sees it.
func apConcurrentApproveOneWins(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	r, err := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	const clicks = 10
	errs := make([]error, clicks)
	atOnce(clicks, func(i int) {
		_, errs[i] = []approvalsAPI{a, b}[i%2].Transition(ctx, r.ID, Pending, Change{To: Approved, By: fmt.Sprintf("U%d", i)})
	})
	final, err := a.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	wins := 0
	for i, err := range errs {
		var ce *ConflictError
		switch {
		case err == nil:
			wins++
			if final.DecidedBy != fmt.Sprintf("U%d", i) {
				t.Errorf("winner U%d but record decided by %s", i, final.DecidedBy)
			}
		case errors.As(err, &ce):
			if ce.Current.State != Approved || ce.Current.DecidedBy != final.DecidedBy {
				t.Errorf("loser U%d told %s by %s, want approved by %s", i, ce.Current.State, ce.Current.DecidedBy, final.DecidedBy)
			}
		default:
			t.Errorf("click U%d: %v", i, err)
		}
	}
	if wins != 1 || final.State != Approved || final.Version != 2 {
		t.Errorf("%d winners, final %s v%d; want exactly 1, approved v2", wins, final.State, final.Version)
	}
}

// apApproveDenyExpireRace: approve, deny, expire and cancel racing on one
// pending request, 200 times: always exactly one transition.
func apApproveDenyExpireRace(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	type move struct {
		s  approvalsAPI
		to State
		by string
	}
	moves := []move{{a, Approved, "U0A"}, {b, Denied, "U0B"}, {b, Expired, "system"}, {a, Cancelled, "U0REQ"}}
	winsBy := map[State]int{}
	for iter := range 200 {
		// A machine per iteration: an approved request stays open.
		r, err := a.Create(ctx, apRequest(apMachine(iter), clk.Now().Add(time.Hour)))
		if err != nil {
			t.Fatalf("iteration %d: Create: %v", iter, err)
		}
		errs := make([]error, len(moves))
		atOnce(len(moves), func(i int) {
			_, errs[i] = moves[i].s.Transition(ctx, r.ID, Pending, Change{To: moves[i].to, By: moves[i].by})
		})
		final, err := a.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		wins := 0
		for i, err := range errs {
			var ce *ConflictError
			switch {
			case err == nil:
				wins++
				if final.State != moves[i].to || final.DecidedBy != moves[i].by {
					t.Fatalf("iteration %d: %s won but record is %s by %s", iter, moves[i].to, final.State, final.DecidedBy)
				}
			case errors.As(err, &ce):
				if !reflect.DeepEqual(ce.Current, final) {
					t.Fatalf("iteration %d: loser saw %+v, final %+v", iter, ce.Current, final)
				}
			default:
				t.Fatalf("iteration %d: %v", iter, err)
			}
		}
		if wins != 1 || final.Version != 2 {
			t.Fatalf("iteration %d: %d winners, version %d; want exactly one transition", iter, wins, final.Version)
		}
		winsBy[final.State]++
	}
	t.Logf("winners over 200 races: %v", winsBy)
}

// apIfVersionTakeoverOnce: schedulers racing to take over a stranded
// executing request with IfVersion: exactly one succeeds, and a stale
// IfVersion is refused afterwards.
func apIfVersionTakeoverOnce(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	r := apReach(t, a, apMachine(1), clk.Now().Add(time.Hour), Executing)
	stranded := r.Version
	const schedulers = 8
	errs := make([]error, schedulers)
	atOnce(schedulers, func(i int) {
		_, errs[i] = []approvalsAPI{a, b}[i%2].Transition(ctx, r.ID, Executing, Change{
			To: Executing, IfVersion: stranded, Note: fmt.Sprintf("taken over by %d", i), CheckAt: clk.Now().Add(time.Minute),
		})
	})
	wins := 0
	for _, err := range errs {
		var ce *ConflictError
		if err == nil {
			wins++
		} else if !errors.As(err, &ce) || ce.Current.Version != stranded+1 {
			t.Errorf("takeover loser: %v, want conflict at version %d", err, stranded+1)
		}
	}
	final, _ := a.Get(ctx, r.ID)
	if wins != 1 || final.Version != stranded+1 || !strings.HasPrefix(final.Note, "taken over by ") {
		t.Errorf("%d takeovers, final %+v; want exactly one", wins, final)
	}
	if _, err := a.Transition(ctx, r.ID, Executing, Change{To: Done, IfVersion: stranded}); err == nil {
		t.Error("transition with a stale IfVersion succeeded")
	}
	if _, err := a.Transition(ctx, r.ID, Executing, Change{To: Done, IfVersion: final.Version}); err != nil {
		t.Errorf("transition with the current IfVersion: %v", err)
	}
}
