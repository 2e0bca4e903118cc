package commands

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// The lease protocol: which replica owns a request, for how long, and how
// ownership passes on. Every replica shares one store; the request's
// CheckAt is the end of its owner's lease, and the store's Due lists the
// requests whose lease has run out, for any replica's scheduler to take.
//
//	state                     owner                           lease (CheckAt)
//	pending                   nobody; the scheduler expires   ExpiresAt (set by the store)
//	approved                  the approver's process claims   now + callLease, then the scheduler claims
//	executing, before POST    the claimer, renewing per try   now + callLease; queued: RunAt + callLease
//	executing, backing off    the sender, until its next try  RunAt (next try) + callLease; Note counts tries
//	executing, reconciling    the sender, up to a minute      RunAt (last look) + callLease
//	executing, after POST     the poller lease's holder       now + FollowFor + pollerLease (a safety net)
//	handed back (retry)       whichever scheduler comes next  now + retrySoon
//
// A taker-over of an executing request without an action id reconciles
// with MDE (the request's marker) before any call; one with an action id
// enrols it for following again.
//
// Following is owned by one lease for the whole deployment, not one per
// request: once MDE has the action, the request joins the store's followed
// set and its CheckAt moves to after FollowFor, so no scheduler takes it.
// The replica holding the poller lease (store HoldLease "poller", for
// pollerLease, renewed every cycle) reads and ends every followed request;
// when it dies its lease runs out and the next replica whose poller loop
// holds it carries on from the store (the set, and each request's Note:
// the status last announced). Its writes are compare-and-sets on the
// request's version like every owner's, so two pollers overlapping for a
// moment announce each change once. CheckAt is only the safety net for a
// request that left the set: a scheduler then enrols it again. Every write by an owner (claim, renew, take over,
// hand back, end) is a compare-and-set on the request's version, so a
// replica whose lease ran out cannot overwrite the new owner's work: its
// write fails with *store.ConflictError and it stops. Pending requests
// have no owner: their decisions (approve, deny, cancel, expire) are a
// compare-and-set on the state, and the first one wins.
type leases struct {
	approvals Approvals
	now       func() time.Time
	cfg       Config

	mu    sync.Mutex
	local map[string]bool // request ids this process runs, so one Tick does not start a second runner
}

func newLeases(cfg Config, a Approvals, now func() time.Time) *leases {
	return &leases{approvals: a, now: now, cfg: cfg, local: map[string]bool{}}
}

// callLease is how long a claim lasts around one MDE call: the call's own
// timeout, and as much again for recording its outcome.
func (l *leases) callLease() time.Duration { return 2 * l.cfg.CallTimeout }

// pollerLease is how long the poller lease lasts between two cycles: two
// poll intervals and a call, so one slow cycle does not hand it on.
func (l *leases) pollerLease() time.Duration { return 2*l.cfg.PollInterval + l.callLease() }

// followedUntil is a followed request's CheckAt: past FollowFor, when the
// poller has ended it, so a scheduler only sees it if the poller never did.
func (l *leases) followedUntil() time.Time {
	return l.now().Add(l.cfg.FollowFor + l.pollerLease())
}

// retrySoon is how long a handed-back request waits: about two scheduler
// ticks, so any replica (this one included) resumes it promptly.
func (l *leases) retrySoon() time.Duration { return 2 * l.cfg.SchedulerEvery }

// approval is the change that approves a pending request: the approver's
// process claims it at once; the scheduler steps in only if that process
// dies before, once callLease has passed.
func (l *leases) approval(by string) store.Change {
	return store.Change{To: store.Approved, By: by, CheckAt: l.now().Add(l.callLease())}
}

// claim makes this replica the owner of an approved request. Exactly one
// replica wins; the others get *store.ConflictError.
func (l *leases) claim(ctx context.Context, r store.Request) (store.Request, error) {
	return l.approvals.Transition(ctx, r.ID, store.Approved, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: l.now().Add(l.callLease())})
}

// takeOver makes this replica the owner of an executing request whose
// owner stopped renewing. Exactly one replica wins.
func (l *leases) takeOver(ctx context.Context, r store.Request) (store.Request, error) {
	return l.renew(ctx, r, l.callLease())
}

// renew keeps r ours for d more.
func (l *leases) renew(ctx context.Context, r store.Request, d time.Duration) (store.Request, error) {
	return l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: l.now().Add(d)})
}

// holdUntil keeps r ours through a wait until at (a rate-limit slot, a 429's
// Retry-After), then one call; RunAt records when it runs.
func (l *leases) holdUntil(ctx context.Context, r store.Request, at time.Time) (store.Request, error) {
	return l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, RunAt: at, CheckAt: at.Add(l.callLease())})
}

// holdForRetry is holdUntil for the next try after MDE could not be
// reached, also recording note (the count of failed tries), so a replica
// that takes r over carries on the same schedule.
func (l *leases) holdForRetry(ctx context.Context, r store.Request, at time.Time, note string) (store.Request, error) {
	return l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, RunAt: at, CheckAt: at.Add(l.callLease()), Note: note})
}

// following records the MDE action r created, and its status, and hands
// r to the poller lease when it is in the followed set (enrolled); else a
// scheduler enrols it soon.
func (l *leases) following(ctx context.Context, r store.Request, a defender.MachineAction, enrolled bool) (store.Request, error) {
	check := l.followedUntil()
	if !enrolled {
		check = l.now().Add(l.retrySoon())
	}
	return l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version,
		MachineActionID: a.ID, CheckAt: check, Note: followNote(a)})
}

// enrol hands r, now in the followed set, to the poller lease.
func (l *leases) enrol(ctx context.Context, r store.Request) (store.Request, error) {
	return l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: l.followedUntil()})
}

// reported records a's new status on r (the poller's write): exactly one
// poller wins, and only it announces the change.
func (l *leases) reported(ctx context.Context, r store.Request, a defender.MachineAction) (store.Request, error) {
	return l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, Note: followNote(a)})
}

// handBack gives r back to the schedulers, to be resumed after retrySoon
// (reconciling first). note, when set, is recorded so the thread hears a
// repeated cause once.
func (l *leases) handBack(ctx context.Context, r store.Request, note string) error {
	_, err := l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: l.now().Add(l.retrySoon()), Note: note})
	return err
}

// end moves r, which we own, to a final state (done or failed).
func (l *leases) end(ctx context.Context, r store.Request, to store.State, actionID, note string) (store.Request, error) {
	return l.approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: to, IfVersion: r.Version, MachineActionID: actionID, Note: note})
}

// lost reports whether err means another replica owns the request now (or
// it ended), with the request as it is.
func lost(err error) (store.Request, bool) {
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return ce.Current, true
	}
	return store.Request{}, false
}

// runLocal marks id as run by this process; false if it already is.
func (l *leases) runLocal(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.local[id] {
		return false
	}
	l.local[id] = true
	return true
}

func (l *leases) doneLocal(id string) {
	l.mu.Lock()
	delete(l.local, id)
	l.mu.Unlock()
}

func (l *leases) runsLocal(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.local[id]
}
