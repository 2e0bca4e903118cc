package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// apCreateNeeding creates a pending request on machine that needs n approvers.
func apCreateNeeding(t *testing.T, a approvalsAPI, machine string, exp time.Time, n int) Request {
	t.Helper()
	req := apRequest(machine, exp)
	req.Needs, req.Protected = n, "matches tag:Tier0 <b>"
	r, err := a.Create(t.Context(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r
}

func apApprove(by string, checkAt time.Time) Change {
	return Change{To: Approved, By: by, CheckAt: checkAt}
}

// apApproveSetOfTwo: a request needing two approvers is approved by the
// second different one; a repeated approver and the requester do not count.
func apApproveSetOfTwo(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	r := apCreateNeeding(t, a, apMachine(1), clk.Now().Add(time.Hour), 2)
	if r.Required() != 2 || r.Protected == "" {
		t.Fatalf("created %+v: want Needs 2 and the protection kept", r)
	}
	lease := clk.Now().Add(time.Minute)
	steps := []struct {
		by      string
		want    Approval
		wantErr error
		state   State
		set     []string
		version int64
	}{
		{"U0A", ApprovalCounted, nil, Pending, []string{"U0A"}, 2},
		{"U0A", ApprovalRepeated, nil, Pending, []string{"U0A"}, 2},
		{"U0REQ", 0, ErrSelfApproval, Pending, []string{"U0A"}, 2},
		{"U0B", ApprovalComplete, nil, Approved, []string{"U0A", "U0B"}, 3},
	}
	for _, st := range steps {
		got, how, err := a.Approve(ctx, r.ID, apApprove(st.by, lease))
		if !errors.Is(err, st.wantErr) || how != st.want {
			t.Fatalf("Approve by %s = %v, %v; want %v, %v", st.by, how, err, st.want, st.wantErr)
		}
		cur, _ := a.Get(ctx, r.ID)
		if err == nil && !reflect.DeepEqual(got, cur) {
			t.Errorf("Approve by %s returned %+v, stored %+v", st.by, got, cur)
		}
		if cur.State != st.state || !slices.Equal(cur.ApprovedBy, st.set) || cur.Version != st.version {
			t.Fatalf("after %s: %s %v v%d; want %s %v v%d", st.by, cur.State, cur.ApprovedBy, cur.Version, st.state, st.set, st.version)
		}
	}
	final, _ := a.Get(ctx, r.ID)
	if final.DecidedBy != "U0B" || !final.CheckAt.Equal(normTime(lease)) || final.Protected != r.Protected {
		t.Errorf("approved record %+v: want decided by U0B, CheckAt the lease, protection kept", final)
	}
	var ce *ConflictError
	if _, _, err := a.Approve(ctx, r.ID, apApprove("U0C", lease)); !errors.As(err, &ce) || ce.Current.State != Approved {
		t.Errorf("third approver: %v, want a conflict showing approved", err)
	}
}

// apApproveSingle: a request needing one approver (the default) is
// approved by its first, with the set recorded.
func apApproveSingle(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	for i, needs := range []int{0, 1} {
		r := apCreateNeeding(t, a, apMachine(i), clk.Now().Add(time.Hour), needs)
		got, how, err := a.Approve(ctx, r.ID, Change{To: Approved, By: "U0A", MessageTS: "111.222", Channel: "C0SOC"})
		if err != nil || how != ApprovalComplete || got.State != Approved || got.DecidedBy != "U0A" ||
			!slices.Equal(got.ApprovedBy, []string{"U0A"}) || got.MessageTS != "111.222" {
			t.Errorf("needs %d: Approve = %+v, %v, %v; want approved by U0A at once", needs, got, how, err)
		}
	}
	if _, _, err := a.Approve(ctx, "r-999", apApprove("U0A", time.Time{})); !errors.Is(err, ErrNotFound) {
		t.Errorf("Approve of an unknown id: %v, want ErrNotFound", err)
	}
	if _, _, err := a.Approve(ctx, "r-1", Change{To: Denied, By: "U0A"}); err == nil {
		t.Error("Approve with Change.To denied succeeded")
	}
	if _, _, err := a.Approve(ctx, "r-1", Change{To: Approved, By: "U0A,U0B"}); err == nil {
		t.Error("Approve by an id holding a comma succeeded")
	}
}

// apApproveIncompleteSetNotByTransition: Transition never approves a
// request whose set is incomplete; deny and cancel still end it, also
// after a first approval.
func apApproveIncompleteSetNotByTransition(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	for i, to := range []State{Denied, Cancelled} {
		r := apCreateNeeding(t, a, apMachine(i), clk.Now().Add(time.Hour), 2)
		var ce *ConflictError
		if _, err := a.Transition(ctx, r.ID, Pending, Change{To: Approved, By: "U0A"}); !errors.As(err, &ce) || ce.Current.State != Pending {
			t.Fatalf("Transition to approved of a set of two: %v, want a conflict", err)
		}
		if _, how, err := a.Approve(ctx, r.ID, apApprove("U0A", time.Time{})); err != nil || how != ApprovalCounted {
			t.Fatalf("first approval: %v, %v", how, err)
		}
		got, err := a.Transition(ctx, r.ID, Pending, Change{To: to, By: "U0B"})
		if err != nil || got.State != to || got.DecidedBy != "U0B" {
			t.Fatalf("%s after one approval: %+v, %v", to, got, err)
		}
		if _, _, err := a.Approve(ctx, r.ID, apApprove("U0C", time.Time{})); !errors.As(err, &ce) || ce.Current.State != to {
			t.Errorf("approval after %s: %v, want a conflict", to, err)
		}
	}
}

// apApprovePastExpiresAt: an approval after ExpiresAt expires the request
// and is told so, like Transition.
func apApprovePastExpiresAt(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	r := apCreateNeeding(t, a, apMachine(1), clk.Now().Add(time.Minute), 2)
	if _, _, err := a.Approve(ctx, r.ID, apApprove("U0A", time.Time{})); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	var ce *ConflictError
	if _, _, err := a.Approve(ctx, r.ID, apApprove("U0B", time.Time{})); !errors.As(err, &ce) ||
		ce.Current.State != Expired || ce.Current.DecidedBy != "system" {
		t.Fatalf("approval past ExpiresAt: %v, want a conflict showing expired by system", err)
	}
	if got, _ := a.Get(ctx, r.ID); got.State != Expired {
		t.Errorf("stored state %s, want expired", got.State)
	}
}

// apConcurrentApproversCompleteOnce: three approvers, each clicking twice
// over two replicas, on a request needing two, 50 times: exactly one call
// completes it, exactly one counts the first approval, and the set holds
// two different approvers.
func apConcurrentApproversCompleteOnce(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	for iter := range 50 {
		r := apCreateNeeding(t, a, apMachine(iter), clk.Now().Add(time.Hour), 2)
		const clicks = 6
		hows := make([]Approval, clicks)
		errs := make([]error, clicks)
		atOnce(clicks, func(i int) {
			_, hows[i], errs[i] = []approvalsAPI{a, b}[i%2].Approve(ctx, r.ID, apApprove(fmt.Sprintf("U0A%d", i%3), time.Time{}))
		})
		count := map[Approval]int{}
		for i, err := range errs {
			var ce *ConflictError
			switch {
			case err == nil:
				count[hows[i]]++
			case errors.As(err, &ce):
				count[0]++
			default:
				t.Fatalf("iteration %d, click %d: %v", iter, i, err)
			}
		}
		final, _ := a.Get(ctx, r.ID)
		if count[ApprovalComplete] != 1 || count[ApprovalCounted] != 1 || final.State != Approved ||
			len(final.ApprovedBy) != 2 || final.ApprovedBy[0] == final.ApprovedBy[1] || final.DecidedBy != final.ApprovedBy[1] || final.Version != 3 {
			t.Fatalf("iteration %d: outcomes %v, final %s by %s set %v v%d; want one counted, one complete, two approvers, v3",
				iter, count, final.State, final.DecidedBy, final.ApprovedBy, final.Version)
		}
	}
}
