package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Memory is the in-process twin of Limiter for a single replica (and
// tests): the same algorithm and answers, on the injected clock cfg.Now.
// Safe for concurrent use.
type Memory struct {
	cfg     Config
	mu      sync.Mutex
	budgets map[string]*limBudget
}

type limBudget struct {
	log     []limEntry // sorted by slot
	seq     int64
	last    int64 // highest clock reading of an admit, µs
	blocked int64 // blocked-until, µs; 0 if none
}

type limEntry struct {
	slot   int64
	member string
}

// NewMemory returns an empty in-memory limiter. It panics when cfg lacks a
// value (see Config).
func NewMemory(cfg Config) *Memory {
	return &Memory{cfg: cfg.checked(), budgets: map[string]*limBudget{}}
}

// now returns the clock in µs, never below the last admit (like the script).
// Limits are the counts and windows m enforces.
func (m *Memory) Limits() Limits { return m.cfg.Limits }

func (m *Memory) now(b *limBudget) int64 {
	return max(m.cfg.Now().UnixMicro(), b.last)
}

func (m *Memory) budget(name string) *limBudget {
	b := m.budgets[name]
	if b == nil {
		b = &limBudget{}
		m.budgets[name] = b
	}
	return b
}

// countAfter returns the number of entries with slot > t.
func (b *limBudget) countAfter(t int64) int {
	i := sort.Search(len(b.log), func(i int) bool { return b.log[i].slot > t })
	return len(b.log) - i
}

// Reserve: see Limiter.Reserve.
func (m *Memory) Reserve(ctx context.Context, budget string, maxWait time.Duration) (Decision, error) {
	if err := checkName("budget", budget); err != nil {
		return Decision{}, err
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	maxWait = max(maxWait, 0)
	lim := m.cfg.Limits
	tm, th := lim.Minute.Microseconds(), lim.Hour.Microseconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.budget(budget)
	now := m.now(b)
	slot := now
	retry := func(limit int, window int64) {
		if len(b.log) >= limit {
			slot = max(slot, b.log[len(b.log)-limit].slot+window)
		}
	}
	retry(lim.PerMinute, tm)
	retry(lim.PerHour, th)
	if b.blocked > now {
		slot = max(slot, b.blocked)
	}
	// Like the Redis limiter: At is the wait from the (clamped) now, added
	// to the clock's reading.
	at := m.cfg.Now().Add(time.Duration(slot-now) * time.Microsecond)
	if slot > now+maxWait.Microseconds() {
		d := Decision{At: at, Minute: b.countAfter(now - tm), Hour: b.countAfter(now - th)}
		m.gc(budget, b, now)
		return d, nil
	}
	// Trim entries that can no longer fill any window.
	i := sort.Search(len(b.log), func(i int) bool { return b.log[i].slot > now-th })
	b.log = append(b.log[:0], b.log[i:]...)
	b.seq++
	e := limEntry{slot: slot, member: fmt.Sprintf("%d-%d", slot, b.seq)}
	// After a Release the slot may precede a later reservation.
	j := sort.Search(len(b.log), func(i int) bool { return b.log[i].slot > slot })
	b.log = slices.Insert(b.log, j, e)
	b.last = now
	return Decision{
		Allowed: true, At: at, Token: e.member,
		Minute: b.countAfter(slot - tm), Hour: b.countAfter(slot - th),
	}, nil
}

// gc drops a budget whose entries and block have all expired, as the Redis
// TTLs do, so idle budgets use no memory.
func (m *Memory) gc(name string, b *limBudget, now int64) {
	th := m.cfg.Limits.Hour.Microseconds()
	if (len(b.log) == 0 || b.log[len(b.log)-1].slot+th <= now) && b.blocked <= now {
		delete(m.budgets, name)
	}
}

// Release: see Limiter.Release.
func (m *Memory) Release(ctx context.Context, budget string, d Decision) error {
	if err := checkName("budget", budget); err != nil {
		return err
	}
	if !d.Allowed || d.Token == "" {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.budgets[budget]
	if b == nil {
		return nil
	}
	for i, e := range b.log {
		if e.member == d.Token {
			b.log = append(b.log[:i], b.log[i+1:]...)
			break
		}
	}
	return nil
}

// Block: see Limiter.Block.
func (m *Memory) Block(ctx context.Context, budget string, until time.Time) error {
	if err := checkName("budget", budget); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.budget(budget)
	if u := until.UnixMicro(); u > m.now(b) {
		b.blocked = max(b.blocked, u)
	} else {
		m.gc(budget, b, m.now(b))
	}
	return nil
}

// QueueDepth: see Limiter.QueueDepth.
func (m *Memory) QueueDepth(ctx context.Context, budget string) (int, error) {
	if err := checkName("budget", budget); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.budgets[budget]
	if b == nil {
		return 0, nil
	}
	return b.countAfter(m.now(b)), nil
}

// Ping always succeeds: there is nothing to reach.
func (m *Memory) Ping(context.Context) error { return nil }
