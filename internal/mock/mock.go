// Package mock holds fakes of the interfaces the commands package consumes,
// as structs of function fields (the style of benbjohnson/wtf's mock
// package): a test sets the one function it cares about and sees every call
// it did not expect as a nil-function panic.
//
// The Over constructors start from a real implementation (the MDE simulator,
// the memory twin of the state store) so a test replaces one method and
// keeps real behaviour for the rest. Redis-backed state and the limiter are
// never mocked: use internal/redistest and the store's memory twins.
package mock

import (
	"context"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Defender fakes commands.Defender. Each method only forwards its
// arguments, so adding a parameter to an MDE call is a mechanical edit of
// its field and its method here.
type Defender struct {
	IsolateFn             func(ctx context.Context, slot defender.Slot, machineID string, t defender.IsolationType, comment string) (defender.MachineAction, error)
	UnisolateFn           func(ctx context.Context, slot defender.Slot, machineID, comment string) (defender.MachineAction, error)
	CancelMachineActionFn func(ctx context.Context, slot defender.Slot, actionID, comment string) (defender.MachineAction, error)
	MachineActionFn       func(ctx context.Context, actionID string) (defender.MachineAction, error)
	MachineFn             func(ctx context.Context, machineID string) (defender.Machine, error)
	FindMachinesByNameFn  func(ctx context.Context, name string) ([]defender.Machine, error)
	MachineActionsFn      func(ctx context.Context, machineID string) ([]defender.MachineAction, error)
	MachineActionsByIDFn  func(ctx context.Context, ids []string) ([]defender.MachineAction, error)
	ResolveMachinesFn     func(ctx context.Context, refs []string) ([]defender.Resolution, error)
	MachinesByTagFn       func(ctx context.Context, tag string) ([]defender.Machine, error)
	ActionsForMachinesFn  func(ctx context.Context, machineIDs []string, top int) ([]defender.MachineAction, error)
	ActionsSinceFn        func(ctx context.Context, typ string, since time.Time) ([]defender.MachineAction, error)
}

// DefenderOver returns a Defender whose every function calls the MDE
// simulator d; replace the ones a test needs to change. (Concrete, so a
// change of the MDE calls' signatures needs no edit here.)
func DefenderOver(d *defender.Simulator) *Defender {
	return &Defender{
		IsolateFn: d.Isolate, UnisolateFn: d.Unisolate, CancelMachineActionFn: d.CancelMachineAction,
		MachineActionFn: d.MachineAction, MachineFn: d.Machine, FindMachinesByNameFn: d.FindMachinesByName,
		MachineActionsFn: d.MachineActions, MachineActionsByIDFn: d.MachineActionsByID, ResolveMachinesFn: d.ResolveMachines,
		MachinesByTagFn: d.MachinesByTag, ActionsForMachinesFn: d.ActionsForMachines, ActionsSinceFn: d.ActionsSince,
	}
}

func (d *Defender) Isolate(ctx context.Context, slot defender.Slot, machineID string, t defender.IsolationType, comment string) (defender.MachineAction, error) {
	return d.IsolateFn(ctx, slot, machineID, t, comment)
}

func (d *Defender) Unisolate(ctx context.Context, slot defender.Slot, machineID, comment string) (defender.MachineAction, error) {
	return d.UnisolateFn(ctx, slot, machineID, comment)
}

func (d *Defender) CancelMachineAction(ctx context.Context, slot defender.Slot, actionID, comment string) (defender.MachineAction, error) {
	return d.CancelMachineActionFn(ctx, slot, actionID, comment)
}

func (d *Defender) MachineAction(ctx context.Context, actionID string) (defender.MachineAction, error) {
	return d.MachineActionFn(ctx, actionID)
}

func (d *Defender) Machine(ctx context.Context, machineID string) (defender.Machine, error) {
	return d.MachineFn(ctx, machineID)
}

func (d *Defender) FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error) {
	return d.FindMachinesByNameFn(ctx, name)
}

func (d *Defender) MachineActions(ctx context.Context, machineID string) ([]defender.MachineAction, error) {
	return d.MachineActionsFn(ctx, machineID)
}

func (d *Defender) MachineActionsByID(ctx context.Context, ids []string) ([]defender.MachineAction, error) {
	return d.MachineActionsByIDFn(ctx, ids)
}

func (d *Defender) ResolveMachines(ctx context.Context, refs []string) ([]defender.Resolution, error) {
	return d.ResolveMachinesFn(ctx, refs)
}

func (d *Defender) MachinesByTag(ctx context.Context, tag string) ([]defender.Machine, error) {
	return d.MachinesByTagFn(ctx, tag)
}

func (d *Defender) ActionsForMachines(ctx context.Context, machineIDs []string, top int) ([]defender.MachineAction, error) {
	return d.ActionsForMachinesFn(ctx, machineIDs, top)
}

func (d *Defender) ActionsSince(ctx context.Context, typ string, since time.Time) ([]defender.MachineAction, error) {
	return d.ActionsSinceFn(ctx, typ, since)
}

// Approvals fakes commands.Approvals, the durable request state. Use it to
// inject store failures on top of store.MemoryApprovals (ApprovalsOver);
// the state machine itself is only ever the real one.
type Approvals struct {
	CreateFn        func(ctx context.Context, r store.Request) (store.Request, error)
	GetFn           func(ctx context.Context, id string) (store.Request, error)
	TransitionFn    func(ctx context.Context, id string, from store.State, ch store.Change) (store.Request, error)
	ApproveFn       func(ctx context.Context, id string, ch store.Change) (store.Request, store.Approval, error)
	ForMachineFn    func(ctx context.Context, machineID string) (store.Request, error)
	DueFn           func(ctx context.Context, limit int) ([]store.Request, error)
	FirstDeliveryFn func(ctx context.Context, key string, ttl time.Duration) (bool, error)
	AppendFn        func(ctx context.Context, e store.Event) error
	HistoryFn       func(ctx context.Context, requestID string) ([]store.Event, error)
}

// ApprovalsAPI is what ApprovalsOver wraps (commands.Approvals' method set).
type ApprovalsAPI interface {
	Create(ctx context.Context, r store.Request) (store.Request, error)
	Get(ctx context.Context, id string) (store.Request, error)
	Transition(ctx context.Context, id string, from store.State, ch store.Change) (store.Request, error)
	Approve(ctx context.Context, id string, ch store.Change) (store.Request, store.Approval, error)
	ForMachine(ctx context.Context, machineID string) (store.Request, error)
	Due(ctx context.Context, limit int) ([]store.Request, error)
	FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error)
	Append(ctx context.Context, e store.Event) error
	History(ctx context.Context, requestID string) ([]store.Event, error)
}

// ApprovalsOver returns an Approvals whose every function calls a.
func ApprovalsOver(a ApprovalsAPI) *Approvals {
	return &Approvals{
		CreateFn: a.Create, GetFn: a.Get, TransitionFn: a.Transition, ApproveFn: a.Approve, ForMachineFn: a.ForMachine,
		DueFn: a.Due, FirstDeliveryFn: a.FirstDelivery, AppendFn: a.Append, HistoryFn: a.History,
	}
}

func (a *Approvals) Create(ctx context.Context, r store.Request) (store.Request, error) {
	return a.CreateFn(ctx, r)
}

func (a *Approvals) Get(ctx context.Context, id string) (store.Request, error) {
	return a.GetFn(ctx, id)
}

func (a *Approvals) Transition(ctx context.Context, id string, from store.State, ch store.Change) (store.Request, error) {
	return a.TransitionFn(ctx, id, from, ch)
}

func (a *Approvals) Approve(ctx context.Context, id string, ch store.Change) (store.Request, store.Approval, error) {
	return a.ApproveFn(ctx, id, ch)
}

func (a *Approvals) ForMachine(ctx context.Context, machineID string) (store.Request, error) {
	return a.ForMachineFn(ctx, machineID)
}

func (a *Approvals) Due(ctx context.Context, limit int) ([]store.Request, error) {
	return a.DueFn(ctx, limit)
}

func (a *Approvals) FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return a.FirstDeliveryFn(ctx, key, ttl)
}

func (a *Approvals) Append(ctx context.Context, e store.Event) error { return a.AppendFn(ctx, e) }

func (a *Approvals) History(ctx context.Context, requestID string) ([]store.Event, error) {
	return a.HistoryFn(ctx, requestID)
}

// Directory fakes commands.Directory (Slack user-group membership).
type Directory struct {
	GroupMembersFn func(ctx context.Context, groupID string) ([]string, error)
}

func (d *Directory) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	return d.GroupMembersFn(ctx, groupID)
}

// Messenger fakes commands.Messenger. M and C are commands.Message and
// commands.Card: type parameters rather than an import, so that commands'
// own tests can use this package without an import cycle. A
// *Messenger[commands.Message, commands.Card] implements commands.Messenger.
type Messenger[M, C any] struct {
	EphemeralFn  func(ctx context.Context, channel, user string, m M) error
	PostCardFn   func(ctx context.Context, channel string, c C) (ts string, err error)
	UpdateCardFn func(ctx context.Context, channel, ts string, c C) error
	ReplyFn      func(ctx context.Context, channel, threadTS string, m M) error
}

func (m *Messenger[M, C]) Ephemeral(ctx context.Context, channel, user string, msg M) error {
	return m.EphemeralFn(ctx, channel, user, msg)
}

func (m *Messenger[M, C]) PostCard(ctx context.Context, channel string, c C) (string, error) {
	return m.PostCardFn(ctx, channel, c)
}

func (m *Messenger[M, C]) UpdateCard(ctx context.Context, channel, ts string, c C) error {
	return m.UpdateCardFn(ctx, channel, ts, c)
}

func (m *Messenger[M, C]) Reply(ctx context.Context, channel, threadTS string, msg M) error {
	return m.ReplyFn(ctx, channel, threadTS, msg)
}

// Throttle fakes commands.Throttle (the refusal throttle's counters); the
// real ones are the store's (store.MemoryApprovals in tests).
type Throttle struct {
	HitFn  func(ctx context.Context, key string, window time.Duration) (int64, error)
	HitsFn func(ctx context.Context, key string) (int64, error)
}

func (t *Throttle) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	return t.HitFn(ctx, key, window)
}

func (t *Throttle) Hits(ctx context.Context, key string) (int64, error) { return t.HitsFn(ctx, key) }
