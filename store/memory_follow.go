package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// memLease is one held lease of the memory twin.
type memLease struct {
	holder string
	until  time.Time
}

// The memory twin of follow.go, on the injected clock. Its maps are made
// lazily so NewMemoryApprovals stays as it was.

// Follow adds request id to the followed set (idempotent).
func (m *MemoryApprovals) Follow(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.followed == nil {
		m.followed = map[string]bool{}
	}
	m.followed[id] = true
	return nil
}

// Unfollow removes request id from the followed set (idempotent).
func (m *MemoryApprovals) Unfollow(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.followed, id)
	return nil
}

// Followed lists the followed request ids, sorted.
func (m *MemoryApprovals) Followed(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.followed))
	for id := range m.followed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// HoldLease takes the lease name for holder, or extends it when holder
// already has it, for ttl; false when another holder's lease is running.
func (m *MemoryApprovals) HoldLease(_ context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("hold lease %s: ttl %s is too short", name, ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	if l, ok := m.leases[name]; ok && l.holder != holder && now.Before(l.until) {
		return false, nil
	}
	if m.leases == nil {
		m.leases = map[string]memLease{}
	}
	m.leases[name] = memLease{holder: holder, until: now.Add(ttl)}
	return true, nil
}

// ReleaseLease ends holder's lease name at once; nothing when holder lost it.
func (m *MemoryApprovals) ReleaseLease(_ context.Context, name, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[name]; ok && l.holder == holder {
		delete(m.leases, name)
	}
	return nil
}
