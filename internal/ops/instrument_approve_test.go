package ops

import (
	"context"
	"errors"
	"testing"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/store"
)

// approvingStore answers Approve with a fixed outcome.
type approvingStore struct {
	commands.Approvals
	how store.Approval
	err error
}

func (a approvingStore) Approve(_ context.Context, id string, ch store.Change) (store.Request, store.Approval, error) {
	return store.Request{ID: id}, a.how, a.err
}

// TestInstrumentApprovalsApprove: only the approval that completes a set
// is an "approved" decision; a first of two or a repeated approver is none.
func TestInstrumentApprovalsApprove(t *testing.T) {
	conflict := &store.ConflictError{Current: store.Request{ID: "r-1", State: store.Denied}, Want: store.Approved}
	tests := []struct {
		name    string
		how     store.Approval
		err     error
		outcome string
	}{
		{"complete", store.ApprovalComplete, nil, OutcomeApproved},
		{"first of two", store.ApprovalCounted, nil, ""},
		{"repeated", store.ApprovalRepeated, nil, ""},
		{"already decided", 0, conflict, OutcomeConflict},
		{"store down", 0, store.ErrUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newMetrics(t, MetricsOptions{})
			r, how, err := InstrumentApprovals(approvingStore{how: tt.how, err: tt.err}, m).
				Approve(context.Background(), "r-1", store.Change{To: store.Approved, By: "U2"})
			if r.ID != "r-1" || how != tt.how || !errors.Is(err, tt.err) {
				t.Fatalf("Approve = (%+v, %v, %v): not passed through", r, how, err)
			}
			checkDecision(t, m, tt.outcome)
		})
	}
}
