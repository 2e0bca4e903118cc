// Package commands is the core of isolate-bot: parsing /isolate and
// /unisolate, the allow-lists, the two-person approval rule, executing
// approved requests against MDE within the rate limit, and the scheduler that
// expires, resumes and reconciles requests. It knows nothing of Slack's wire
// format: transports (bot for Slack, the console) call Service and render the
// transport-neutral Card and Message values it hands to a Messenger.
//
// A request's life, one file per stage: request.go (the slash command, up
// to a pending request and its card; cancel.go and status.go for the other
// subcommands), decide.go (Approve/Deny), send.go (the one MDE call, with
// outcome.go deciding what each MDE error means), follow.go (the action's
// status until it is final) and scheduler.go (expiry and takeover).
// lease.go names which replica owns a request in each state and for how
// long.
package commands

import (
	"context"
	"errors"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// Defender is the MDE API as commands uses it. *defender.Client and
// *defender.Simulator implement it.
type Defender interface {
	// Isolate, Unisolate and CancelMachineAction send when slot admits the
	// call (a reserved rate-limit slot); a nil slot means the Defender
	// admits the call through its own Gate, as it does for every read.
	Isolate(ctx context.Context, slot defender.Slot, machineID string, t defender.IsolationType, comment string) (defender.MachineAction, error)
	Unisolate(ctx context.Context, slot defender.Slot, machineID, comment string) (defender.MachineAction, error)
	MachineAction(ctx context.Context, actionID string) (defender.MachineAction, error)
	Machine(ctx context.Context, machineID string) (defender.Machine, error)
	FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error)
	CancelMachineAction(ctx context.Context, slot defender.Slot, actionID, comment string) (defender.MachineAction, error)
	MachineActions(ctx context.Context, machineID string) ([]defender.MachineAction, error)
	// Batched reads (OData or-chains, each URL under about 2 KB): one call
	// per chunk, never one per machine or action.
	MachineActionsByID(ctx context.Context, ids []string) ([]defender.MachineAction, error)
	ResolveMachines(ctx context.Context, refs []string) ([]defender.Resolution, error)
	MachinesByTag(ctx context.Context, tag string) ([]defender.Machine, error)
	ActionsForMachines(ctx context.Context, machineIDs []string, top int) ([]defender.MachineAction, error)
	// ActionsSince reads every action of type typ created at or after
	// since: how a batch's sent actions are followed, one call per read.
	ActionsSince(ctx context.Context, typ string, since time.Time) ([]defender.MachineAction, error)
}

// Approvals is the durable request state, the delivery de-duplication and
// the audit log. store.Approvals (Redis) and store.MemoryApprovals implement it.
type Approvals interface {
	// Create stores r as pending, assigning ID, CreatedAt, Version and
	// CheckAt (= ExpiresAt). *store.PendingError if the machine already has
	// an open request.
	Create(ctx context.Context, r store.Request) (store.Request, error)
	// Get returns store.ErrNotFound for an unknown id.
	Get(ctx context.Context, id string) (store.Request, error)
	// Transition is an atomic compare-and-set from `from` to ch.To.
	// *store.ConflictError (with the current record) when the state is not
	// `from`, the version does not match ch.IfVersion, or the transition is
	// not allowed. A pending request past ExpiresAt is moved to expired by
	// the same call and reported as a conflict.
	Transition(ctx context.Context, id string, from store.State, ch store.Change) (store.Request, error)
	// Approve adds ch.By to a pending request's set of approvers and
	// approves it when the set holds Request.Required() different ones,
	// in one compare-and-set (store.Approvals.Approve): of concurrent
	// approvers exactly one gets store.ApprovalComplete.
	Approve(ctx context.Context, id string, ch store.Change) (store.Request, store.Approval, error)
	// ForMachine returns the machine's open request, else its most recent
	// one; store.ErrNotFound if it never had one.
	ForMachine(ctx context.Context, machineID string) (store.Request, error)
	// Due returns up to limit non-terminal requests whose CheckAt has
	// passed, oldest first.
	Due(ctx context.Context, limit int) ([]store.Request, error)
	// FirstDelivery reports whether key (a Slack envelope or trigger id) is
	// seen for the first time within ttl.
	FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Append writes one audit event; History reads one request's events in order.
	Append(ctx context.Context, e store.Event) error
	History(ctx context.Context, requestID string) ([]store.Event, error)
}

// Gate reserves the rate-limit slot of an MDE write before anything waits,
// so the caller can record and announce a queued call without delaying it.
// *ratelimit.Gate implements it.
type Gate interface {
	// Reserve returns a ticket for now or for a reserved future slot (the
	// Defender waits on it), *RateLimitError when the next slot is further
	// than the request may wait, or an error wrapping ErrLimiterUnavailable:
	// then nothing may be sent.
	Reserve(ctx context.Context, budget string) (*ratelimit.Ticket, error)
}

// Messenger is what commands needs from a chat transport. bot implements it
// for Slack, the console for a terminal. Implementations escape every
// user-supplied string they render.
type Messenger interface {
	// Ephemeral shows m to user only, in channel.
	Ephemeral(ctx context.Context, channel, user string, m Message) error
	// PostCard posts a request card in channel and returns its message ts,
	// the root of the request's audit thread. ErrNotInChannel when the bot
	// cannot post there.
	PostCard(ctx context.Context, channel string, c Card) (ts string, err error)
	// UpdateCard replaces the card at ts (e.g. buttons gone once decided).
	UpdateCard(ctx context.Context, channel, ts string, c Card) error
	// Reply posts m in the thread under threadTS.
	Reply(ctx context.Context, channel, threadTS string, m Message) error
}

// Directory resolves user groups (Slack "S…" ids) to member user ids.
type Directory interface {
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// Card is a request card: everything the transport needs to render it.
type Card struct {
	Request   store.Request
	Machine   defender.Machine // zero if unknown
	Approvers []string         // user ids and group ids allowed to approve
	// Action is the MDE action the request created or follows, as last
	// read: the card shows its status and, once final, the outcome.
	Action *defender.MachineAction
	// Protected, when set, says why the machine is protected (it needs two
	// approvers); escaped by the transport.
	Protected string
	// Buttons are what the card offers now, in order (see cardButtons);
	// none once nothing is valid any more.
	Buttons []Button
	// Bulk is set on the card of a list or tag command (outbreak mode).
	Bulk *BulkCard
}

// Button is one action a card can offer.
type Button string

const (
	ButtonApprove Button = "approve" // pending: approve (two-person rule)
	ButtonDeny    Button = "deny"    // pending: deny
	ButtonCancel  Button = "cancel"  // the MDE action is Pending or InProgress: cancel it in MDE
	ButtonRelease Button = "release" // an isolation succeeded: request its release
	ButtonStop    Button = "stop"    // a bulk request's batch runs: stop its unsent rest
)

// Message is transport-neutral rich text: a sequence of spans, plus
// optional structured attachments rendered as fields.
type Message struct {
	Spans    []Span
	Action   *defender.MachineAction // rendered as action id, type, scope, status, machine, comment, created
	Machines []defender.Machine      // candidate list for an ambiguous host name
	// List is further lines of plain text (escaped like Text), such as a
	// batch's machines: one reply however long, which transports split
	// within their own limits (Slack: 3,000 characters a section, 50
	// blocks a message), saying how many lines they left out.
	List []string
}

// SpanKind says how a transport renders a Span.
type SpanKind int

const (
	Text   SpanKind = iota // untrusted or plain text: always escaped
	Bold                   // emphasised text: escaped
	Code                   // inline code (ids, host names): escaped
	User                   // a Slack user id (or group id starting with S): rendered as a mention
	Thread                 // link to the audit thread at Channel/TS, labelled Text
)

// Span is one piece of a Message.
type Span struct {
	Kind    SpanKind
	Text    string
	Channel string // Thread
	TS      string // Thread
}

// ErrNotInChannel is returned by Messenger.PostCard when the bot is not a
// member of the channel and so cannot post the card.
var ErrNotInChannel = errors.New("the bot is not in this channel")
