package ops

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// InstrumentDefender counts every call of d in isolatebot_mde_calls_total by
// operation and HTTP status. Results and errors pass through unchanged. A nil
// m returns d itself.
func InstrumentDefender(d commands.Defender, m *Metrics) commands.Defender {
	if m == nil {
		return d
	}
	return &instrumentedDefender{d: d, m: m}
}

type instrumentedDefender struct {
	d commands.Defender
	m *Metrics
}

var _ commands.Defender = (*instrumentedDefender)(nil)

// mdeCode is the code label for an MDE call's error: the HTTP status when
// MDE answered, "token" when Azure AD gave no token (whatever its status),
// else "error"; "ok" for success.
func mdeCode(err error) string {
	if err == nil {
		return CodeOK
	}
	var ae *defender.APIError
	if errors.As(err, &ae) && ae.Op == defender.OpToken {
		return CodeToken
	}
	if errors.As(err, &ae) && ae.Status >= 100 && ae.Status <= 599 {
		return strconv.Itoa(ae.Status)
	}
	return CodeError
}

func (i *instrumentedDefender) Isolate(ctx context.Context, slot defender.Slot, machineID string, t defender.IsolationType, comment string) (defender.MachineAction, error) {
	a, err := i.d.Isolate(ctx, slot, machineID, t, comment)
	i.m.mdeCall(OpIsolate, mdeCode(err))
	return a, err
}

func (i *instrumentedDefender) Unisolate(ctx context.Context, slot defender.Slot, machineID, comment string) (defender.MachineAction, error) {
	a, err := i.d.Unisolate(ctx, slot, machineID, comment)
	i.m.mdeCall(OpUnisolate, mdeCode(err))
	return a, err
}

func (i *instrumentedDefender) MachineAction(ctx context.Context, actionID string) (defender.MachineAction, error) {
	a, err := i.d.MachineAction(ctx, actionID)
	i.m.mdeCall(OpMachineAction, mdeCode(err))
	return a, err
}

func (i *instrumentedDefender) Machine(ctx context.Context, machineID string) (defender.Machine, error) {
	mc, err := i.d.Machine(ctx, machineID)
	i.m.mdeCall(OpMachine, mdeCode(err))
	return mc, err
}

func (i *instrumentedDefender) FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error) {
	ms, err := i.d.FindMachinesByName(ctx, name)
	i.m.mdeCall(OpFindMachines, mdeCode(err))
	return ms, err
}

func (i *instrumentedDefender) CancelMachineAction(ctx context.Context, slot defender.Slot, actionID, comment string) (defender.MachineAction, error) {
	a, err := i.d.CancelMachineAction(ctx, slot, actionID, comment)
	i.m.mdeCall(OpCancel, mdeCode(err))
	return a, err
}

func (i *instrumentedDefender) MachineActions(ctx context.Context, machineID string) ([]defender.MachineAction, error) {
	as, err := i.d.MachineActions(ctx, machineID)
	i.m.mdeCall(OpMachineActions, mdeCode(err))
	return as, err
}

func (i *instrumentedDefender) MachineActionsByID(ctx context.Context, ids []string) ([]defender.MachineAction, error) {
	as, err := i.d.MachineActionsByID(ctx, ids)
	i.m.mdeCall(OpActionsByID, mdeCode(err))
	return as, err
}

func (i *instrumentedDefender) ResolveMachines(ctx context.Context, refs []string) ([]defender.Resolution, error) {
	rs, err := i.d.ResolveMachines(ctx, refs)
	i.m.mdeCall(OpResolveMachines, mdeCode(err))
	return rs, err
}

func (i *instrumentedDefender) MachinesByTag(ctx context.Context, tag string) ([]defender.Machine, error) {
	ms, err := i.d.MachinesByTag(ctx, tag)
	i.m.mdeCall(OpMachinesByTag, mdeCode(err))
	return ms, err
}

func (i *instrumentedDefender) ActionsForMachines(ctx context.Context, machineIDs []string, top int) ([]defender.MachineAction, error) {
	as, err := i.d.ActionsForMachines(ctx, machineIDs, top)
	i.m.mdeCall(OpActionsForMachines, mdeCode(err))
	return as, err
}

// ActionsSince counts one call per method call, like the other batched
// reads (it may read several pages).
func (i *instrumentedDefender) ActionsSince(ctx context.Context, typ string, since time.Time) ([]defender.MachineAction, error) {
	as, err := i.d.ActionsSince(ctx, typ, since)
	i.m.mdeCall(OpActionsSince, mdeCode(err))
	return as, err
}

// InstrumentLimiter counts every Reserve answer in
// isolatebot_limiter_decisions_total (admitted: may call now; queued: holds
// a future slot; refused; error) and tracks queued slots for
// isolatebot_limiter_queue_depth until their time comes or they are
// released. A nil m returns l itself.
func InstrumentLimiter(l ratelimit.Backend, m *Metrics) ratelimit.Backend {
	if m == nil {
		return l
	}
	return &instrumentedLimiter{l: l, m: m}
}

type instrumentedLimiter struct {
	l ratelimit.Backend
	m *Metrics
}

var _ ratelimit.Backend = (*instrumentedLimiter)(nil)

func (i *instrumentedLimiter) Limits() ratelimit.Limits { return i.l.Limits() }

func (i *instrumentedLimiter) Reserve(ctx context.Context, budget string, maxWait time.Duration) (ratelimit.Decision, error) {
	d, err := i.l.Reserve(ctx, budget, maxWait)
	switch {
	case err != nil:
		i.m.limiterResult(budget, ResultError)
	case !d.Allowed:
		i.m.limiterResult(budget, ResultRefused)
	case d.At.After(i.m.now()):
		i.m.limiterResult(budget, ResultQueued)
		i.m.queue.add(keyOf(budget, d.At, d.Token))
	default:
		i.m.limiterResult(budget, ResultAdmitted)
	}
	return d, err
}

func (i *instrumentedLimiter) Release(ctx context.Context, budget string, d ratelimit.Decision) error {
	// Forget the slot whatever the store answers: this replica no longer
	// waits for it.
	i.m.queue.remove(keyOf(budget, d.At, d.Token))
	return i.l.Release(ctx, budget, d)
}

func (i *instrumentedLimiter) Block(ctx context.Context, budget string, until time.Time) error {
	return i.l.Block(ctx, budget, until)
}

// InstrumentApprovals counts approval decisions in
// isolatebot_decisions_total: each successful Transition out of pending by
// its target state (approved, denied, expired, cancelled), each
// *store.ConflictError on a Transition out of pending as "conflict" (a
// second click, a race between approvers, or already expired), and each
// audit event of type store.EventClickRefused as "refused". Everything
// passes through unchanged. A nil m returns a itself.
func InstrumentApprovals(a commands.Approvals, m *Metrics) commands.Approvals {
	if m == nil {
		return a
	}
	return &instrumentedApprovals{Approvals: a, m: m}
}

type instrumentedApprovals struct {
	commands.Approvals // Create, Get, ForMachine, Due, FirstDelivery, History pass through
	m                  *Metrics
}

func (i *instrumentedApprovals) Transition(ctx context.Context, id string, from store.State, ch store.Change) (store.Request, error) {
	r, err := i.Approvals.Transition(ctx, id, from, ch)
	if from != store.Pending {
		return r, err
	}
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		i.m.Decision(OutcomeConflict)
	case err != nil:
		// Store unavailable or unknown request: no decision was made.
	case ch.To == store.Approved, ch.To == store.Denied, ch.To == store.Expired, ch.To == store.Cancelled:
		i.m.Decision(string(ch.To))
	}
	return r, err
}

// Approve counts the approval that completes a request's set as
// "approved" (a first of two is no decision yet) and a conflict as
// "conflict".
func (i *instrumentedApprovals) Approve(ctx context.Context, id string, ch store.Change) (store.Request, store.Approval, error) {
	r, how, err := i.Approvals.Approve(ctx, id, ch)
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		i.m.Decision(OutcomeConflict)
	case err == nil && how == store.ApprovalComplete:
		i.m.Decision(string(store.Approved))
	}
	return r, how, err
}

func (i *instrumentedApprovals) Append(ctx context.Context, e store.Event) error {
	err := i.Approvals.Append(ctx, e)
	if e.Type == store.EventClickRefused {
		// Counted even if the audit write failed: the refusal happened.
		i.m.Decision(OutcomeRefused)
	}
	return err
}
