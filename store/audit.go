package store

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Audit stream field names (the schema is in README.md, "Audit stream
// schema"). Every entry has every field, in this order, so Redis stores the
// names once per stream node rather than once per entry.
const (
	aTime      = "t"
	aRequest   = "req"
	aType      = "type"
	aActor     = "actor"
	aMachine   = "machine"
	aOperation = "op"
	aStatus    = "status"
	aAction    = "action"
	aCorr      = "corr"
	aReason    = "reason"
)

var (
	//go:embed approvals_audit.lua
	auditSrc    string
	auditScript = redis.NewScript(auditSrc)
)

// eventFields returns e as stream field/value pairs; e.Time must be set.
func eventFields(e Event) []any {
	status := ""
	if e.StatusCode != 0 {
		status = strconv.Itoa(e.StatusCode)
	}
	return []any{
		aTime, e.Time.UTC().Format(time.RFC3339Nano),
		aRequest, e.RequestID,
		aType, e.Type,
		aActor, e.Actor,
		aMachine, e.MachineID,
		aOperation, e.Operation,
		aStatus, status,
		aAction, e.ActionID,
		aCorr, e.CorrelationID,
		aReason, e.Reason,
	}
}

// parseEvent is the inverse of eventFields.
func parseEvent(id string, m map[string]any) (Event, error) {
	s := func(k string) string { v, _ := m[k].(string); return v }
	e := Event{
		ID:            id,
		RequestID:     s(aRequest),
		Type:          s(aType),
		Actor:         s(aActor),
		MachineID:     s(aMachine),
		Operation:     s(aOperation),
		ActionID:      s(aAction),
		CorrelationID: s(aCorr),
		Reason:        s(aReason),
	}
	var err error
	if e.Time, err = time.Parse(time.RFC3339Nano, s(aTime)); err != nil {
		return Event{}, fmt.Errorf("audit entry %s: time %q: %w", id, s(aTime), err)
	}
	if st := s(aStatus); st != "" {
		if e.StatusCode, err = strconv.Atoi(st); err != nil {
			return Event{}, fmt.Errorf("audit entry %s: status %q: %w", id, st, err)
		}
	}
	return e, nil
}

// Append writes e to the global audit stream "{prefix}:audit" and, when
// e.RequestID is set, to that request's stream "{prefix}:audit:<id>", kept
// for Retention after its last event; History reads the latter. Both writes
// are one script. Each append trims the global stream to entries younger
// than Retention (exactly, by entry id time, i.e. Redis's clock) and to
// about AuditMaxLen entries, so AUDIT_RETENTION governs both streams and
// the length cap bounds a flood. A zero e.Time is the store's clock.
func (a *Approvals) Append(ctx context.Context, e Event) error {
	if e.Type == "" {
		return fmt.Errorf("append audit event for request %q: type is empty", e.RequestID)
	}
	if e.Time.IsZero() {
		e.Time = a.cfg.Now()
	}
	keys := []string{a.keys.audit()}
	if e.RequestID != "" {
		keys = append(keys, a.keys.auditOf(e.RequestID))
	}
	retention := a.cfg.Retention.Milliseconds()
	args := []any{a.cfg.AuditMaxLen, retention, retention, auditPerRequestMaxLen}
	args = append(args, eventFields(e)...)
	if err := auditScript.Run(ctx, a.rdb, keys, args...).Err(); err != nil {
		return unavailable(fmt.Sprintf("append %s event for request %q", e.Type, e.RequestID), err)
	}
	return nil
}

// History returns request id's events in the order they were appended
// (empty if none, or past Retention).
func (a *Approvals) History(ctx context.Context, requestID string) ([]Event, error) {
	msgs, err := a.rdb.XRange(ctx, a.keys.auditOf(requestID), "-", "+").Result()
	if err != nil {
		return nil, unavailable("read history of request "+requestID, err)
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		e, err := parseEvent(m.ID, m.Values)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
