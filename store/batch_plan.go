package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// A plan is the machines a pending bulk request names, as resolved when it
// was requested (skipped ones with their reason): what the approvers see
// and what the batch sends once approved. It lives beside the request for
// Retention, so any replica can start the batch on the approving click.

func (s *Batches) planKey(requestID string) string {
	return "{" + s.prefix + ":p:" + requestID + "}"
}

// SavePlan stores the entries of pending request requestID.
func (s *Batches) SavePlan(ctx context.Context, requestID string, entries []BatchEntry) error {
	if err := s.rdb.Set(ctx, s.planKey(requestID), encodePlan(entries), s.cfg.Retention).Err(); err != nil {
		return unavailable("save plan of "+requestID, err)
	}
	return nil
}

// Plan returns the entries SavePlan stored; ErrNotFound when there are none.
func (s *Batches) Plan(ctx context.Context, requestID string) ([]BatchEntry, error) {
	raw, err := s.rdb.Get(ctx, s.planKey(requestID)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, fmt.Errorf("plan of %s: %w", requestID, ErrNotFound)
	case err != nil:
		return nil, unavailable("read plan of "+requestID, err)
	}
	return decodePlan(requestID, raw)
}

// SavePlan stores the entries of pending request requestID.
func (m *MemoryBatches) SavePlan(_ context.Context, requestID string, entries []BatchEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.plans == nil {
		m.plans = map[string]string{}
	}
	m.plans[requestID] = encodePlan(entries)
	return nil
}

// Plan returns the entries SavePlan stored; ErrNotFound when there are none.
func (m *MemoryBatches) Plan(_ context.Context, requestID string) ([]BatchEntry, error) {
	m.mu.Lock()
	raw, ok := m.plans[requestID]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("plan of %s: %w", requestID, ErrNotFound)
	}
	return decodePlan(requestID, raw)
}

func encodePlan(entries []BatchEntry) string {
	wire := make(map[string]string, len(entries))
	for i, e := range entries {
		wire[strconv.Itoa(i+1)] = encodeEntry(e)
	}
	b, _ := json.Marshal(wire)
	return string(b)
}

func decodePlan(requestID, raw string) ([]BatchEntry, error) {
	var wire map[string]string
	if err := json.Unmarshal([]byte(raw), &wire); err != nil {
		return nil, fmt.Errorf("plan of %s: %w", requestID, err)
	}
	return parseEntries(requestID, wire)
}
