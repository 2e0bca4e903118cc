package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The memory twin of dedup.go, on the injected clock.

type memHits struct {
	n   int64
	exp time.Time
}

// FirstDelivery: see Approvals.FirstDelivery.
func (m *MemoryApprovals) FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if key == "" || ttl <= 0 {
		return false, fmt.Errorf("first delivery: need a key and a positive ttl (got %q, %v)", key, ttl)
	}
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(now)
	if _, ok := m.seen[key]; ok {
		return false, nil
	}
	m.seen[key] = now.Add(ttl)
	return true, nil
}

// Hit: see Approvals.Hit.
func (m *MemoryApprovals) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if key == "" || window <= 0 {
		return 0, fmt.Errorf("hit: need a key and a positive window (got %q, %v)", key, window)
	}
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.hits[key]
	if !ok || !now.Before(h.exp) {
		h = memHits{exp: now.Add(window)}
	}
	h.n++
	if m.hits == nil {
		m.hits = map[string]memHits{}
	}
	m.hits[key] = h
	return h.n, nil
}

// Hits: see Approvals.Hits.
func (m *MemoryApprovals) Hits(ctx context.Context, key string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.hits[key]; ok && now.Before(h.exp) {
		return h.n, nil
	}
	return 0, nil
}

// AuditTail: see Approvals.AuditTail.
func (m *MemoryApprovals) AuditTail(ctx context.Context, n int64) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(m.cfg.Now())
	from := max(int64(len(m.audit))-n, 0)
	return slices.Clone(m.audit[from:]), nil
}
