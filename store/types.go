// Package store holds the state the replicas of isolate-bot must agree on:
// the approval requests and their state machine, de-duplication of Slack
// deliveries, and the audit log; the MDE rate limiter is internal/ratelimit.
// Redis-backed types serve several replicas; the Memory twin serves one
// process with the same semantics (one contract test suite runs against
// both).
package store

import (
	"errors"
	"fmt"
	"time"
)

// State of an approval request. The only allowed transitions:
//
//	pending  → approved | denied | expired | cancelled
//	approved → executing
//	executing → done | failed
//
// A non-terminal state may also be "updated" to itself (same from and to),
// to record RunAt/CheckAt/MachineActionID changes.
type State string

const (
	Pending   State = "pending"
	Approved  State = "approved"
	Denied    State = "denied"
	Expired   State = "expired"
	Cancelled State = "cancelled"
	Executing State = "executing" // claimed by one replica: queued, calling MDE, or following its action until final
	Done      State = "done"
	Failed    State = "failed"
)

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool {
	switch s {
	case Denied, Expired, Cancelled, Done, Failed:
		return true
	}
	return false
}

// Allowed reports whether from → to is a legal transition (including the
// same-state update of a non-terminal state).
func Allowed(from, to State) bool {
	if from == to {
		return !from.Terminal()
	}
	switch from {
	case Pending:
		return to == Approved || to == Denied || to == Expired || to == Cancelled
	case Approved:
		return to == Executing
	case Executing:
		return to == Done || to == Failed
	}
	return false
}

// Command is what a request asks MDE to do.
type Command string

const (
	Isolate   Command = "isolate"
	Unisolate Command = "unisolate"
)

// Request is one approval request: the durable record behind a request card
// and its audit thread.
type Request struct {
	ID              string    // "r-<n>", assigned by Create
	Command         Command   //
	MachineID       string    // 40-hex MDE machine id, lower case
	HostName        string    // computerDnsName at request time
	IsolationType   string    // MDE wire value ("Full", "Selective", "UnManagedDevice"); empty for unisolate
	Comment         string    // the analyst's comment, raw (escape when rendering)
	Requester       string    // Slack user id
	Channel         string    // Slack channel id of the card
	MessageTS       string    // Slack ts of the card (root of the audit thread)
	State           State     //
	DecidedBy       string    // Slack user id of who approved/denied/cancelled; "system" for expiry
	DecidedAt       time.Time //
	CreatedAt       time.Time //
	ExpiresAt       time.Time // pending requests expire at this time
	UpdatedAt       time.Time //
	RunAt           time.Time // expected MDE call time when queued behind the rate limit
	CheckAt         time.Time // when a scheduler should look at this non-terminal request again
	MachineActionID string    // once MDE returned it
	Note            string    // last error or reason, plain text
	Version         int64     // incremented by every successful Transition or Approve
	// Needs is how many different approvers, none of them the requester,
	// must approve (Approve); 0 and 1 both mean one. Set at Create.
	Needs int
	// Protected says why the machine is protected (PROTECTED_MACHINES'
	// matching entry), raw text; set at Create, shown on the card.
	Protected string
	// ApprovedBy are the distinct approvers so far, in order (Approve).
	ApprovedBy []string
}

// Required is how many different approvers r needs: Needs, at least one.
func (r Request) Required() int { return max(r.Needs, 1) }

// Change is what a Transition writes besides the new state. Zero fields are
// left as they are.
type Change struct {
	To              State
	By              string    // actor (Slack user id or "system"); recorded as DecidedBy when leaving pending
	At              time.Time // zero: the store's clock
	RunAt           time.Time
	CheckAt         time.Time // non-terminal states are indexed by CheckAt for Due
	MachineActionID string
	Note            string
	MessageTS       string
	Channel         string
	// IfVersion, when non-zero, makes the compare-and-set also require
	// Request.Version == IfVersion: this is how one scheduler among several
	// replicas takes over a stranded request exactly once.
	IfVersion int64
}

// Errors callers branch on with errors.Is / errors.As.
var (
	ErrNotFound = errors.New("request not found")
	// ErrUnavailable wraps every failure to reach the backing store: callers
	// fail closed (no MDE call) and tell the user the state store is down.
	ErrUnavailable = errors.New("state store unavailable")
)

// ConflictError: the compare-and-set of a Transition lost, or the transition
// is not allowed from the current state. Current is the record as it is now
// (who decided first, and when).
type ConflictError struct {
	Current Request
	Want    State
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("request %s is %s, cannot move to %s", e.Current.ID, e.Current.State, e.Want)
}

// ErrSelfApproval: Approve refused the requester as an approver of their own
// request (the two-person rule, enforced by the store as well).
var ErrSelfApproval = errors.New("the requester cannot approve their own request")

// Approval is what an Approve call did.
type Approval int

const (
	// ApprovalCounted: the approver was added; more are needed, the
	// request stays pending.
	ApprovalCounted Approval = iota + 1
	// ApprovalRepeated: the approver had approved already; nothing changed
	// (the same approver twice counts once).
	ApprovalRepeated
	// ApprovalComplete: this approval completed the set; the request is
	// approved. Exactly one Approve call per request returns it.
	ApprovalComplete
)

func (a Approval) String() string {
	switch a {
	case ApprovalCounted:
		return "counted"
	case ApprovalRepeated:
		return "repeated"
	case ApprovalComplete:
		return "complete"
	}
	return fmt.Sprintf("Approval(%d)", int(a))
}

// PendingError: Create refused because the machine already has an open
// (pending, approved or executing) request.
type PendingError struct {
	Existing Request
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("machine %s already has open request %s (%s)", e.Existing.MachineID, e.Existing.ID, e.Existing.State)
}

// Event is one audit-log entry. Schema (stream fields) is documented in
// store/README.md; Type is one of the Event* constants.
type Event struct {
	ID            string    // stream entry id, set when read back
	Time          time.Time //
	RequestID     string    //
	Type          string    //
	Actor         string    // Slack user id or "system"
	MachineID     string    //
	Operation     string    // MDE operation for EventMDECall
	StatusCode    int       // HTTP status of an MDE call
	ActionID      string    // MachineAction id
	CorrelationID string    // MDE error.target
	Reason        string    // free text: why refused, error text, new status
}

// Audit event types.
const (
	EventCreated      = "created"
	EventRefused      = "refused"
	EventApproved     = "approved"
	EventDenied       = "denied"
	EventExpired      = "expired"
	EventCancelled    = "cancelled"
	EventClickRefused = "click_refused"
	EventQueued       = "queued"
	EventMDECall      = "mde_call"
	EventStatus       = "status"
	EventDone         = "done"
	EventFailed       = "failed"
	// EventFollowing: the request follows an action of its type already
	// under way in MDE (e.g. started in the portal) instead of sending one.
	EventFollowing = "following_existing"
	// EventReleaseRequested: Release on an isolation's card opened a
	// release request (its id in Reason).
	EventReleaseRequested = "release_requested"
)
