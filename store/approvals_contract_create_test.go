package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// apCreateGetForMachine: Create assigns id, state, version and times; Get
// and ForMachine read back the same record; unknown ids are ErrNotFound and
// incomplete requests are refused.
func apCreateGetForMachine(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	now := clk.Now()
	exp := now.Add(15 * time.Minute)
	in := apRequest(apMachine(1), exp)
	in.State, in.Version, in.DecidedBy = Done, 7, "ignored" // Create assigns these
	got, err := a.Create(ctx, in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	want := apRequest(apMachine(1), normTime(exp))
	want.ID, want.State, want.Version = "r-1", Pending, 1
	want.CreatedAt, want.UpdatedAt, want.CheckAt = normTime(now), normTime(now), normTime(exp)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Create returned\n%+v\nwant\n%+v", got, want)
	}
	for name, get := range map[string]func() (Request, error){
		"Get":        func() (Request, error) { return a.Get(ctx, "r-1") },
		"ForMachine": func() (Request, error) { return a.ForMachine(ctx, apMachine(1)) },
	} {
		r, err := get()
		if err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("%s = %+v, %v; want %+v", name, r, err, want)
		}
	}
	r2, err := a.Create(ctx, apRequest(apMachine(2), exp))
	if err != nil || r2.ID != "r-2" {
		t.Errorf("second Create = %q, %v; want r-2", r2.ID, err)
	}
	if _, err := a.Get(ctx, "r-99"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := a.ForMachine(ctx, apMachine(3)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ForMachine(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := a.Transition(ctx, "r-99", Pending, Change{To: Approved}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Transition(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := a.Create(ctx, apRequest(apMachine(4), time.Time{})); err == nil {
		t.Error("Create without ExpiresAt succeeded")
	}
	if _, err := a.Create(ctx, apRequest("", exp)); err == nil {
		t.Error("Create without MachineID succeeded")
	}
	if err := a.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// apOneOpenRequestPerMachine: while a machine's request is pending,
// approved or executing (even pending past ExpiresAt), Create refuses with
// *PendingError naming it; once it ends, a new request becomes the
// machine's.
func apOneOpenRequestPerMachine(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	exp := clk.Now().Add(time.Hour)
	m := apMachine(1)
	for _, open := range []State{Pending, Approved, Executing} {
		t.Run(string(open), func(t *testing.T) {
			// Close whatever the previous case left open.
			if prev, err := a.ForMachine(ctx, m); err == nil && !prev.State.Terminal() {
				to := map[State]State{Pending: Cancelled, Approved: Executing, Executing: Failed}[prev.State]
				for !prev.State.Terminal() {
					if prev, err = a.Transition(ctx, prev.ID, prev.State, Change{To: to}); err != nil {
						t.Fatal(err)
					}
					to = Failed
				}
			}
			first := apReach(t, a, m, exp, open)
			_, err := a.Create(ctx, apRequest(m, exp))
			var pe *PendingError
			if !errors.As(err, &pe) {
				t.Fatalf("duplicate Create error = %v, want *PendingError", err)
			}
			if !reflect.DeepEqual(pe.Existing, first) {
				t.Errorf("PendingError.Existing = %+v, want %+v", pe.Existing, first)
			}
			if got, _ := a.ForMachine(ctx, m); got.ID != first.ID {
				t.Errorf("ForMachine = %s, want the open %s", got.ID, first.ID)
			}
		})
	}
	// Once terminal, a new request is allowed and becomes the machine's.
	cur, _ := a.ForMachine(ctx, m)
	if _, err := a.Transition(ctx, cur.ID, Executing, Change{To: Done}); err != nil {
		t.Fatal(err)
	}
	next, err := a.Create(ctx, apRequest(m, exp))
	if err != nil {
		t.Fatalf("Create after done: %v", err)
	}
	if got, _ := a.ForMachine(ctx, m); got.ID != next.ID {
		t.Errorf("ForMachine = %s, want latest %s", got.ID, next.ID)
	}
	// A pending request past ExpiresAt still blocks until expired.
	clk.Advance(2 * time.Hour)
	var pe *PendingError
	if _, err := a.Create(ctx, apRequest(m, clk.Now().Add(time.Hour))); !errors.As(err, &pe) {
		t.Fatalf("Create over an unexpired-but-late pending request: %v, want *PendingError", err)
	}
	if _, err := a.Transition(ctx, next.ID, Pending, Change{To: Expired, By: "system"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create(ctx, apRequest(m, clk.Now().Add(time.Hour))); err != nil {
		t.Errorf("Create after expiry: %v", err)
	}
}

// apConcurrentCreateOneWins: concurrent Creates for one machine from two
// replicas: exactly one wins, the others are told which.
func apConcurrentCreateOneWins(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	const n = 10
	got := make([]Request, n)
	errs := make([]error, n)
	atOnce(n, func(i int) {
		got[i], errs[i] = []approvalsAPI{a, b}[i%2].Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Hour)))
	})
	winner, err := a.ForMachine(ctx, apMachine(1))
	if err != nil {
		t.Fatal(err)
	}
	wins := 0
	for i, err := range errs {
		var pe *PendingError
		switch {
		case err == nil:
			wins++
			if got[i].ID != winner.ID {
				t.Errorf("Create %d returned %s, machine points to %s", i, got[i].ID, winner.ID)
			}
		case errors.As(err, &pe):
			if pe.Existing.ID != winner.ID {
				t.Errorf("Create %d refused naming %s, winner %s", i, pe.Existing.ID, winner.ID)
			}
		default:
			t.Errorf("Create %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d concurrent Creates succeeded for one machine, want 1", wins)
	}
	if n, _ := a.Pending(ctx); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
}
