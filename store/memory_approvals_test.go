package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestMemoryApprovalsPrunesOnAccess: entries past their TTL on the injected
// clock are dropped by the next call, so a long-running console does not grow.
func TestMemoryApprovalsPrunesOnAccess(t *testing.T) {
	ctx := context.Background()
	clk := newAPClock()
	m := NewMemoryApprovals(complete(ApprovalsConfig{Now: clk.Now, Retention: time.Hour}))
	for i := range 50 {
		if _, err := m.FirstDelivery(ctx, "Ev"+apMachine(i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	r, err := m.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Append(ctx, Event{RequestID: r.ID, Type: EventCreated}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if _, err := m.Get(ctx, r.ID); err != nil {
		t.Fatalf("Get within retention: %v", err)
	}
	size := func() (seen, reqs, machines, audits int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.seen), len(m.reqs), len(m.machines), len(m.perReq)
	}
	if s, q, mc, a := size(); s != 0 || q != 1 || mc != 1 || a != 1 {
		t.Errorf("after 1m: %d seen, %d requests, %d machines, %d histories; want 0, 1, 1, 1", s, q, mc, a)
	}
	clk.Advance(time.Hour)
	if _, err := m.Get(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after retention: %v, want ErrNotFound", err)
	}
	if s, q, mc, a := size(); s+q+mc+a != 0 {
		t.Errorf("after retention: %d seen, %d requests, %d machines, %d histories; want none", s, q, mc, a)
	}
}

// TestMemoryApprovalsTrimsExactly: the twin trims the global audit log to
// exactly AuditMaxLen entries and Retention on its clock.
func TestMemoryApprovalsTrimsExactly(t *testing.T) {
	ctx := context.Background()
	clk := newAPClock()
	m := NewMemoryApprovals(complete(ApprovalsConfig{Now: clk.Now, AuditMaxLen: 5, Retention: time.Minute}))
	for range 7 {
		clk.Advance(time.Second)
		if err := m.Append(ctx, Event{Type: EventRefused}); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.auditLen(); n != 5 {
		t.Errorf("audit length %d, want 5", n)
	}
	// Entries at +3s…+7s; at +66s those older than +6s go (MINID keeps
	// ids ≥ the threshold): +6s, +7s and the new one remain.
	clk.Advance(59 * time.Second)
	if err := m.Append(ctx, Event{Type: EventRefused}); err != nil {
		t.Fatal(err)
	}
	if n := m.auditLen(); n != 3 {
		t.Errorf("audit length at +66s: %d, want 3", n)
	}
}

// TestMemoryApprovalsHonoursContext: a cancelled context fails every call,
// as it would against Redis.
func TestMemoryApprovalsHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := NewMemoryApprovals(complete(ApprovalsConfig{}))
	if _, err := m.Create(ctx, apRequest(apMachine(1), time.Now().Add(time.Hour))); !errors.Is(err, context.Canceled) {
		t.Errorf("Create: %v", err)
	}
	if _, err := m.FirstDelivery(ctx, "Ev1", time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("FirstDelivery: %v", err)
	}
	if err := m.Append(ctx, Event{Type: EventCreated}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append: %v", err)
	}
}

// auditIDs are the global audit log's entry ids, oldest first.
func (m *MemoryApprovals) auditIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, len(m.audit))
	for i, e := range m.audit {
		ids[i] = e.ID
	}
	return ids
}
