package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// MemoryBatches is the in-process twin of Batches (the console, tests):
// the same semantics on the injected clock, which here also drives
// Retention. Safe for concurrent use.
type MemoryBatches struct {
	cfg BatchesConfig

	mu      sync.Mutex
	seq     int64
	batches map[string]*memBatch
	running []string          // ids, oldest first
	plans   map[string]string // request id → encoded plan (batch_plan.go)
}

type memBatch struct {
	b       Batch
	entries []BatchEntry
	queue   []int // positions, head first
	exp     time.Time
	replies map[string]bool // ClaimReply's names
}

// NewMemoryBatches returns an empty MemoryBatches. It panics when cfg
// lacks a value.
func NewMemoryBatches(cfg BatchesConfig) *MemoryBatches {
	return &MemoryBatches{cfg: cfg.checked(), batches: map[string]*memBatch{}}
}

// get returns the live batch id; m.mu is held.
func (m *MemoryBatches) get(id string) (*memBatch, bool) {
	mb, ok := m.batches[id]
	if ok && !m.cfg.Now().Before(mb.exp) {
		delete(m.batches, id)
		return nil, false
	}
	return mb, ok
}

// CreateBatch: see Batches.CreateBatch.
func (m *MemoryBatches) CreateBatch(ctx context.Context, b Batch, entries []BatchEntry) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	now := m.cfg.Now()
	b, entries, err := prepareBatch(b, entries, now)
	if err != nil {
		return Batch{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	b.ID = "b-" + strconv.FormatInt(m.seq, 10)
	if b.Counts.Queued == 0 {
		b.State = BatchDone
	}
	mb := &memBatch{b: b, entries: entries, exp: now.Add(m.cfg.Retention)}
	for i := range mb.entries {
		mb.entries[i].Batch = b.ID
		if mb.entries[i].State == EntryQueued {
			mb.queue = append(mb.queue, mb.entries[i].N)
		}
	}
	m.batches[b.ID] = mb
	if b.State == BatchRunning {
		m.running = append(m.running, b.ID)
	}
	return m.snapshot(mb), nil
}

// snapshot is mb's batch with its counts; m.mu is held.
func (m *MemoryBatches) snapshot(mb *memBatch) Batch {
	b := mb.b
	b.Approvers = slices.Clone(b.Approvers)
	b.Counts.Queued, b.Counts.Claimed = len(mb.queue), 0
	for _, e := range mb.entries {
		if e.State == EntryClaimed {
			b.Counts.Claimed++
		}
	}
	return b
}

// Running: see Batches.Running.
func (m *MemoryBatches) Running(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.running), nil
}

// Forget: see Batches.Forget.
func (m *MemoryBatches) Forget(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running = slices.DeleteFunc(m.running, func(s string) bool { return s == id })
	return nil
}

// GetBatch: see Batches.GetBatch.
func (m *MemoryBatches) GetBatch(ctx context.Context, id string) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.get(id)
	if !ok {
		return Batch{}, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	return m.snapshot(mb), nil
}

// Entries: see Batches.Entries.
func (m *MemoryBatches) Entries(ctx context.Context, id string) ([]BatchEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.get(id)
	if !ok {
		return nil, nil
	}
	return slices.Clone(mb.entries), nil
}

// Claim: see Batches.Claim.
func (m *MemoryBatches) Claim(ctx context.Context, id, owner string, lease time.Duration) (BatchEntry, error) {
	if err := ctx.Err(); err != nil {
		return BatchEntry{}, err
	}
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.get(id)
	if !ok || mb.b.State == BatchDone {
		return BatchEntry{}, fmt.Errorf("%s: %w", id, ErrBatchClosed)
	}
	// Like the zset: the claim that ran out first (ties by position as a
	// string, as Redis orders equal scores).
	pick, reclaimed, live := -1, false, false
	for i, e := range mb.entries {
		if e.State != EntryClaimed {
			continue
		}
		if e.LeaseUntil.After(now) {
			live = true
			continue
		}
		if pick < 0 || e.LeaseUntil.Before(mb.entries[pick].LeaseUntil) ||
			(e.LeaseUntil.Equal(mb.entries[pick].LeaseUntil) && strconv.Itoa(e.N) < strconv.Itoa(mb.entries[pick].N)) {
			pick, reclaimed = i, true
		}
	}
	if pick < 0 && mb.b.State == BatchRunning && len(mb.queue) > 0 {
		pick, mb.queue = mb.queue[0]-1, mb.queue[1:]
	}
	if pick < 0 {
		if mb.b.State == BatchRunning || live {
			return BatchEntry{}, ErrBatchEmpty
		}
		return BatchEntry{}, fmt.Errorf("%s: %w", id, ErrBatchClosed)
	}
	e := &mb.entries[pick]
	e.State, e.Owner, e.LeaseUntil = EntryClaimed, owner, now.Add(lease).UTC().Truncate(time.Microsecond)
	e.Attempt++
	out := *e
	out.Reclaimed = reclaimed
	return out, nil
}

// Extend: see Batches.Extend.
func (m *MemoryBatches) Extend(ctx context.Context, e BatchEntry, until time.Time) (BatchEntry, error) {
	out, _, err := m.record(ctx, e, func(mb *memBatch, cur *BatchEntry) bool {
		cur.LeaseUntil = until.UTC().Truncate(time.Microsecond)
		return false
	})
	return out, err
}

// Requeue: see Batches.Requeue.
func (m *MemoryBatches) Requeue(ctx context.Context, e BatchEntry) error {
	_, _, err := m.record(ctx, e, func(mb *memBatch, cur *BatchEntry) bool {
		cur.State, cur.Owner, cur.LeaseUntil = EntryQueued, "", time.Time{}
		mb.queue = append([]int{cur.N}, mb.queue...)
		return false
	})
	return err
}

// Finish: see Batches.Finish.
func (m *MemoryBatches) Finish(ctx context.Context, e BatchEntry, to EntryState, actionID, reason string) (BatchEntry, bool, error) {
	if !to.Final() {
		return BatchEntry{}, false, fmt.Errorf("batch: %s is not a final entry state", to)
	}
	return m.record(ctx, e, func(mb *memBatch, cur *BatchEntry) bool {
		cur.State, cur.Owner, cur.LeaseUntil = to, "", time.Time{}
		if actionID != "" {
			cur.ActionID = actionID
		}
		if r := oneLine(reason); r != "" {
			cur.Reason = r
		}
		switch to {
		case EntrySent:
			mb.b.Counts.Sent++
		case EntryFailed:
			mb.b.Counts.Failed++
		case EntrySkipped:
			mb.b.Counts.Skipped++
		}
		if len(mb.queue) > 0 || m.snapshot(mb).Counts.Claimed > 0 {
			return false
		}
		if mb.b.State == BatchRunning {
			mb.b.State = BatchDone
		}
		mb.exp = m.cfg.Now().Add(m.cfg.Retention)
		m.running = slices.DeleteFunc(m.running, func(s string) bool { return s == mb.b.ID })
		return true
	})
}

// record applies change to e's entry when e's claim is still current.
func (m *MemoryBatches) record(ctx context.Context, e BatchEntry, change func(*memBatch, *BatchEntry) bool) (BatchEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return BatchEntry{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.get(e.Batch)
	if !ok || e.N < 1 || e.N > len(mb.entries) {
		return BatchEntry{}, false, fmt.Errorf("%s: %w", e.Marker(), ErrLostClaim)
	}
	cur := &mb.entries[e.N-1]
	if cur.State != EntryClaimed || cur.Owner != e.Owner || cur.Attempt != e.Attempt {
		return BatchEntry{}, false, fmt.Errorf("%s: %w", e.Marker(), ErrLostClaim)
	}
	finished := change(mb, cur)
	return *cur, finished, nil
}

// Stop: see Batches.Stop.
func (m *MemoryBatches) Stop(ctx context.Context, id, by string) (Batch, bool, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.get(id)
	if !ok {
		return Batch{}, false, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	if mb.b.State != BatchRunning {
		return m.snapshot(mb), false, nil
	}
	now := m.cfg.Now()
	mb.b.State, mb.b.StoppedBy, mb.b.StoppedAt = BatchStopped, by, now.UTC().Truncate(time.Microsecond)
	if m.snapshot(mb).Counts.Claimed == 0 {
		mb.exp = now.Add(m.cfg.Retention)
	}
	return m.snapshot(mb), true, nil
}

// RecordResults: see Batches.RecordResults.
func (m *MemoryBatches) RecordResults(ctx context.Context, id string, rs []ActionResult) ([]BatchEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.get(id)
	if !ok {
		return nil, errBatchGone(id)
	}
	var done []int
	for _, r := range rs {
		if r.N < 1 || r.N > len(mb.entries) || r.ActionID == "" || r.Status == "" {
			continue
		}
		e := &mb.entries[r.N-1]
		if e.State != EntrySent || e.ActionID != r.ActionID || FinalStatus(e.Status) || e.Status == r.Status {
			continue
		}
		e.Status = r.Status
		if !FinalStatus(r.Status) {
			continue
		}
		done = append(done, r.N)
		if r.Status == statusSucceeded {
			mb.b.Counts.Succeeded++
		} else {
			mb.b.Counts.Unsuccessful++
			if d := resultDetail(r); d != "" {
				e.Reason = d
			}
		}
	}
	out := make([]BatchEntry, len(done))
	for i, n := range done {
		out[i] = mb.entries[n-1]
	}
	return out, nil
}

// ClaimReply: see Batches.ClaimReply.
func (m *MemoryBatches) ClaimReply(ctx context.Context, id, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if name == "" {
		return false, errors.New("batch: ClaimReply needs a name")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.get(id)
	if !ok {
		return false, errBatchGone(id)
	}
	if mb.replies[name] {
		return false, nil
	}
	if mb.replies == nil {
		mb.replies = map[string]bool{}
	}
	mb.replies[name] = true
	return true, nil
}

// Ping always succeeds.
func (m *MemoryBatches) Ping(context.Context) error { return nil }
