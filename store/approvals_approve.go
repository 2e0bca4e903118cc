package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The approval set: a request needs Request.Required() different
// approvers, none of them the requester (protected machines need two;
// issue 11's large batches will too). Approve adds one approver at a time
// and approves the request when the set is complete, in one
// compare-and-set, so two approvers clicking at once complete it exactly
// once. Transition never approves a request that needs more than one.

var (
	//go:embed approvals_approve.lua
	approveSrc    string
	approveScript = redis.NewScript(approveSrc)
)

// checkApprove validates Approve's arguments.
func checkApprove(id string, ch Change) error {
	switch {
	case ch.To != Approved:
		return fmt.Errorf("approve request %s: Change.To is %q, want %q", id, ch.To, Approved)
	case ch.By == "" || strings.Contains(ch.By, ","):
		return fmt.Errorf("approve request %s: approver %q is not a user id", id, ch.By)
	}
	return nil
}

// Approve adds ch.By to pending request id's approvers. When they then
// number r.Required(), the request moves to approved (DecidedBy ch.By,
// DecidedAt ch.At or now, CheckAt ch.CheckAt) and Approve returns
// ApprovalComplete; otherwise it stays pending (ApprovalCounted). An
// approver already in the set changes nothing (ApprovalRepeated). Every
// change increments Version; ch.MessageTS and ch.Channel are recorded when
// set. ch.To must be Approved. *ConflictError when the request is not
// pending (a pending request past ExpiresAt is expired by the same call,
// as in Transition); ErrSelfApproval when ch.By is the requester;
// ErrNotFound for an unknown id.
func (a *Approvals) Approve(ctx context.Context, id string, ch Change) (Request, Approval, error) {
	if err := checkApprove(id, ch); err != nil {
		return Request{}, 0, err
	}
	machine, err := a.rdb.HGet(ctx, a.keys.req(id), fMachine).Result()
	if errors.Is(err, redis.Nil) {
		return Request{}, 0, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Request{}, 0, unavailable("approve request "+id, err)
	}
	now := normTime(a.cfg.Now())
	at := now
	if !ch.At.IsZero() {
		at = normTime(ch.At)
	}
	res, err := approveScript.Run(ctx, a.rdb,
		[]string{a.keys.req(id), a.keys.due(), a.keys.machine(machine)},
		id, ch.By, micros(now), micros(at), a.cfg.Retention.Milliseconds(),
		micros(ch.CheckAt), ch.MessageTS, ch.Channel,
	).Slice()
	if err != nil {
		return Request{}, 0, unavailable("approve request "+id, err)
	}
	status, _ := res[0].(string)
	if status == "notfound" {
		return Request{}, 0, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	cur, err := decodeReply(id, res[1])
	if err != nil {
		return Request{}, 0, err
	}
	return approveResult(id, status, cur)
}

// approveResult maps the script's (or the memory twin's) status.
func approveResult(id, status string, cur Request) (Request, Approval, error) {
	switch status {
	case "counted":
		return cur, ApprovalCounted, nil
	case "repeated":
		return cur, ApprovalRepeated, nil
	case "complete":
		return cur, ApprovalComplete, nil
	case "conflict":
		return Request{}, 0, &ConflictError{Current: cur, Want: Approved}
	case "self":
		return Request{}, 0, fmt.Errorf("approve request %s: %w", id, ErrSelfApproval)
	}
	return Request{}, 0, fmt.Errorf("approve request %s: unexpected script reply %q", id, status)
}

// Approve: see Approvals.Approve.
func (m *MemoryApprovals) Approve(ctx context.Context, id string, ch Change) (Request, Approval, error) {
	if err := ctx.Err(); err != nil {
		return Request{}, 0, err
	}
	if err := checkApprove(id, ch); err != nil {
		return Request{}, 0, err
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
		return Request{}, 0, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	r := rec.r
	switch {
	case r.State == Pending && !now.Before(r.ExpiresAt):
		r.State, r.DecidedBy, r.DecidedAt, r.UpdatedAt = Expired, "system", now, now
		r.Version++
		m.save(r, now)
		return approveResult(id, "conflict", r)
	case r.State != Pending:
		return approveResult(id, "conflict", r)
	case ch.By == r.Requester:
		return approveResult(id, "self", r)
	case slices.Contains(r.ApprovedBy, ch.By):
		return approveResult(id, "repeated", r)
	}
	r.ApprovedBy = append(slices.Clone(r.ApprovedBy), ch.By)
	r.UpdatedAt = now
	r.Version++
	if ch.MessageTS != "" {
		r.MessageTS = ch.MessageTS
	}
	if ch.Channel != "" {
		r.Channel = ch.Channel
	}
	status := "counted"
	if len(r.ApprovedBy) >= r.Required() {
		status = "complete"
		r.State, r.DecidedBy, r.DecidedAt = Approved, ch.By, at
		if !ch.CheckAt.IsZero() {
			r.CheckAt = normTime(ch.CheckAt)
		}
	}
	m.save(r, now)
	return approveResult(id, status, r)
}
