package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryApprovals is the in-process twin of Approvals for one replica (the
// console, tests): the same semantics, run on the injected clock — which
// here also drives Retention, FirstDelivery TTLs and audit trimming (Redis
// runs those on its own clock). Expired entries are pruned on access.
// AuditMaxLen trims exactly rather than approximately.
// Safe for concurrent use.
type MemoryApprovals struct {
	cfg ApprovalsConfig

	mu       sync.Mutex
	seq      int64
	reqs     map[string]memRecord
	machines map[string]memPointer
	seen     map[string]time.Time // key → expiry
	hits     map[string]memHits   // Hit counters (memory_dedup.go)
	audit    []Event              // global stream, oldest first
	perReq   map[string]*memAudit
	lastMS   int64 // last audit entry id, to make ids increase like XADD's
	lastSeq  int64
	followed map[string]bool     // followed request ids (memory_follow.go)
	leases   map[string]memLease // named leases (memory_follow.go)
}

type memRecord struct {
	r   Request
	exp time.Time
}

type memPointer struct {
	id  string
	exp time.Time
}

type memAudit struct {
	events []Event
	exp    time.Time
}

// NewMemoryApprovals returns an empty MemoryApprovals. It panics when cfg
// lacks a value.
func NewMemoryApprovals(cfg ApprovalsConfig) *MemoryApprovals {
	return &MemoryApprovals{
		cfg:      cfg.checked(),
		reqs:     map[string]memRecord{},
		machines: map[string]memPointer{},
		seen:     map[string]time.Time{},
		perReq:   map[string]*memAudit{},
	}
}

// prune drops what has passed its TTL; m.mu is held.
func (m *MemoryApprovals) prune(now time.Time) {
	for id, rec := range m.reqs {
		if !now.Before(rec.exp) {
			delete(m.reqs, id)
		}
	}
	for id, p := range m.machines {
		if !now.Before(p.exp) {
			delete(m.machines, id)
		}
	}
	for k, exp := range m.seen {
		if !now.Before(exp) {
			delete(m.seen, k)
		}
	}
	for id, a := range m.perReq {
		if !now.Before(a.exp) {
			delete(m.perReq, id)
		}
	}
	for k, h := range m.hits {
		if !now.Before(h.exp) {
			delete(m.hits, k)
		}
	}
}

// Ping always succeeds.
func (m *MemoryApprovals) Ping(context.Context) error { return nil }

// Create: see Approvals.Create.
func (m *MemoryApprovals) Create(ctx context.Context, r Request) (Request, error) {
	if err := ctx.Err(); err != nil {
		return Request{}, err
	}
	now := m.cfg.Now()
	r, err := prepareCreate(r, now)
	if err != nil {
		return Request{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(now)
	m.seq++ // like INCR before the check: a refused Create uses up a number
	r.ID = "r-" + strconv.FormatInt(m.seq, 10)
	if p, ok := m.machines[r.MachineID]; ok {
		if ex, ok := m.reqs[p.id]; ok && !ex.r.State.Terminal() {
			return Request{}, &PendingError{Existing: ex.r}
		}
	}
	exp := now.Add(m.cfg.Retention)
	m.reqs[r.ID] = memRecord{r: r, exp: exp}
	m.machines[r.MachineID] = memPointer{id: r.ID, exp: exp}
	return r, nil
}

// Get: see Approvals.Get.
func (m *MemoryApprovals) Get(ctx context.Context, id string) (Request, error) {
	if err := ctx.Err(); err != nil {
		return Request{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(m.cfg.Now())
	rec, ok := m.reqs[id]
	if !ok {
		return Request{}, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	return rec.r, nil
}

// Transition: see Approvals.Transition.
func (m *MemoryApprovals) Transition(ctx context.Context, id string, from State, ch Change) (Request, error) {
	if err := ctx.Err(); err != nil {
		return Request{}, err
	}
	now := normTime(m.cfg.Now())
	at := now
	if !ch.At.IsZero() {
		at = normTime(ch.At)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(now)
	rec, ok := m.reqs[id]
	if !ok {
		return Request{}, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	r := rec.r
	if r.State == Pending && !now.Before(r.ExpiresAt) && ch.To != Expired && ch.To != Cancelled {
		r.State, r.DecidedBy, r.DecidedAt, r.UpdatedAt = Expired, "system", now, now
		r.Version++
		m.save(r, now)
		return Request{}, &ConflictError{Current: r, Want: ch.To}
	}
	if r.State != from || !Allowed(from, ch.To) || (ch.IfVersion != 0 && ch.IfVersion != r.Version) ||
		(from == Pending && ch.To == Approved && r.Required() > 1) {
		return Request{}, &ConflictError{Current: r, Want: ch.To}
	}
	if from == Pending && ch.To != Pending {
		if ch.By != "" {
			r.DecidedBy = ch.By
		}
		r.DecidedAt = at
	}
	r.State, r.UpdatedAt = ch.To, now
	r.Version++
	if !ch.RunAt.IsZero() {
		r.RunAt = normTime(ch.RunAt)
	}
	if !ch.CheckAt.IsZero() {
		r.CheckAt = normTime(ch.CheckAt)
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&r.MachineActionID, ch.MachineActionID}, {&r.Note, ch.Note},
		{&r.MessageTS, ch.MessageTS}, {&r.Channel, ch.Channel},
	} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	m.save(r, now)
	return r, nil
}

// save stores r and refreshes its TTLs like the transition script; m.mu is held.
func (m *MemoryApprovals) save(r Request, now time.Time) {
	exp := now.Add(m.cfg.Retention)
	m.reqs[r.ID] = memRecord{r: r, exp: exp}
	if p, ok := m.machines[r.MachineID]; ok && p.id == r.ID {
		m.machines[r.MachineID] = memPointer{id: r.ID, exp: exp}
	}
}

// ForMachine: see Approvals.ForMachine.
func (m *MemoryApprovals) ForMachine(ctx context.Context, machineID string) (Request, error) {
	if err := ctx.Err(); err != nil {
		return Request{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(m.cfg.Now())
	p, ok := m.machines[machineID]
	if !ok {
		return Request{}, fmt.Errorf("machine %s: %w", machineID, ErrNotFound)
	}
	rec, ok := m.reqs[p.id]
	if !ok {
		return Request{}, fmt.Errorf("request %s: %w", p.id, ErrNotFound)
	}
	return rec.r, nil
}

// Due: see Approvals.Due. Ties in CheckAt are ordered by id as strings,
// like members of a Redis sorted set.
func (m *MemoryApprovals) Due(ctx context.Context, limit int) ([]Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	now := normTime(m.cfg.Now())
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(now)
	var out []Request
	for _, rec := range m.reqs {
		if !rec.r.State.Terminal() && !rec.r.CheckAt.After(now) {
			out = append(out, rec.r)
		}
	}
	slices.SortFunc(out, func(a, b Request) int {
		if c := a.CheckAt.Compare(b.CheckAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Pending counts pending requests.
func (m *MemoryApprovals) Pending(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(m.cfg.Now())
	n := 0
	for _, rec := range m.reqs {
		if rec.r.State == Pending {
			n++
		}
	}
	return n, nil
}

// Append: see Approvals.Append. Entry ids are "<ms>-<n>" from the injected
// clock, increasing like XADD's.
func (m *MemoryApprovals) Append(ctx context.Context, e Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.Type == "" {
		return fmt.Errorf("append audit event for request %q: type is empty", e.RequestID)
	}
	now := m.cfg.Now()
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(now)
	ms := now.UnixMilli()
	if ms > m.lastMS {
		m.lastMS, m.lastSeq = ms, 0
	} else {
		m.lastSeq++
	}
	e.ID = strconv.FormatInt(m.lastMS, 10) + "-" + strconv.FormatInt(m.lastSeq, 10)
	m.audit = append(m.audit, e)
	// Trim by age (entry id time), then by length.
	minMS := m.lastMS - m.cfg.Retention.Milliseconds()
	drop := 0
	for drop < len(m.audit) && entryMS(m.audit[drop].ID) < minMS {
		drop++
	}
	if n := int64(len(m.audit) - drop); n > m.cfg.AuditMaxLen {
		drop += int(n - m.cfg.AuditMaxLen)
	}
	if drop > 0 {
		m.audit = slices.Delete(m.audit, 0, drop)
	}
	if e.RequestID != "" {
		a := m.perReq[e.RequestID]
		if a == nil {
			a = &memAudit{}
			m.perReq[e.RequestID] = a
		}
		a.events = append(a.events, e)
		if len(a.events) > auditPerRequestMaxLen {
			a.events = slices.Delete(a.events, 0, len(a.events)-auditPerRequestMaxLen)
		}
		a.exp = now.Add(m.cfg.Retention)
	}
	return nil
}

func entryMS(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

// History: see Approvals.History.
func (m *MemoryApprovals) History(ctx context.Context, requestID string) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(m.cfg.Now())
	a := m.perReq[requestID]
	if a == nil {
		return []Event{}, nil
	}
	return slices.Clone(a.events), nil
}

// auditLen is the global audit stream's length (tests).
func (m *MemoryApprovals) auditLen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.audit)
}
