package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// An action already under way: approval and the queue can take hours, and
// someone may isolate the machine in the portal meanwhile. The send stage
// reads the machine's actions again right before its first call, and
// again when MDE answers 400 ActiveRequestAlreadyExists: an action of the
// request's own type is followed (the request ends with it), one of the
// opposite type fails the request with the reason.

// underWayNow is the machine's isolation action that is not final, if any.
func (s *Service) underWayNow(ctx context.Context, r store.Request) (*defender.MachineAction, error) {
	acts, err := s.readActions(ctx, r.MachineID)
	if err != nil {
		return nil, err
	}
	if st := deriveState(acts, s.now()); st.Last != nil && !st.Last.Final() {
		return st.Last, nil
	}
	return nil, nil
}

// UnderWayError is the re-read before the first call finding an
// isolation action of the machine under way: nothing was sent.
type UnderWayError struct{ Action defender.MachineAction }

func (e *UnderWayError) Error() string {
	return fmt.Sprintf("MDE action %s (%s) is already under way for machine %s", e.Action.ID, e.Action.Type, e.Action.MachineID)
}

// recheckAfter is how old the request's own look-up (at creation) must be
// before the send stage reads the isolation state again: a younger one is
// fresh, and MDE's 400 catches an action started since. It spares the
// machine-actions budget a read per quick approval.
const recheckAfter = time.Minute

// recheck reads the isolation state right before r's first MDE call is
// booked (unless r was looked up less than recheckAfter ago):
// *UnderWayError when an action is under way. One started while the call
// then waits in the queue is reported by MDE's 400 (then sendUnderWay). A
// failed read lets the call go ahead for the same reason. The read gets
// half a call's time, so read and call stay within the sender's lease.
func (s *Service) recheck(ctx context.Context, r store.Request) error {
	if s.now().Sub(r.CreatedAt) < recheckAfter {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout/2)
	defer cancel()
	a, err := s.underWayNow(rctx, r)
	switch {
	case err != nil:
		s.logger(ctx).Warn().Err(err).Msg("could not re-read the machine's actions before the MDE call; sending (MDE refuses a second action)")
		return nil
	case a != nil:
		return &UnderWayError{Action: *a}
	}
	return nil
}

// sendUnderWay handles an action under way, found by recheck (err is an
// *UnderWayError) or reported by MDE's 400 "Action is already in
// progress" (then read now). It reports whether to send again: MDE lists
// no action under way any more, the one it meant has ended.
func (s *Service) sendUnderWay(ctx context.Context, r store.Request, err error, apiErr *defender.APIError) bool {
	var uw *UnderWayError
	if errors.As(err, &uw) {
		s.joinUnderWay(ctx, r, uw.Action, nil)
		return false
	}
	a, err := s.underWayNow(ctx, r)
	switch {
	case err != nil:
		s.retryLater(ctx, r, retryNote("MDE has an action in progress for this machine and its actions could not be read", err))
		return false
	case a == nil:
		s.logger(ctx).Info().Msg("MDE said an action was in progress but lists none now; sending again")
		return true
	}
	s.joinUnderWay(ctx, r, *a, apiErr)
	return false
}

// joinUnderWay follows a when it is of r's own type, else fails r naming
// it: releasing a machine being isolated (or the reverse) is a decision
// for people, not for a queue.
func (s *Service) joinUnderWay(ctx context.Context, r store.Request, a defender.MachineAction, apiErr *defender.APIError) {
	if createdBy(a, r) {
		s.done(ctx, r, a, 0) // our own call, listed late
		return
	}
	by := describeRequestor(a)
	if !strings.EqualFold(a.Type, actionType(r)) {
		other := store.Isolate
		if strings.EqualFold(a.Type, "Unisolate") {
			other = store.Unisolate
		}
		why := fmt.Sprintf("MDE already has a %s of this machine under way (action %s, %s, requested by %s), so the %s was not sent. Wait for that action to end (or cancel it), then request again.",
			commandVerb(other), a.ID, a.Status, by, commandVerb(r.Command))
		s.fail(ctx, r, why, apiErr, &a)
		return
	}
	out := msg(code(hostOrID(r)), txtf(" is already being %s by MDE action ", underWayVerb(r)), code(a.ID),
		txtf(" (%s), requested by %s; following it instead of sending another.", strings.TrimPrefix(a.Scope+", ", ", ")+a.Status, by))
	out.Action = &a
	s.reply(ctx, r, out)
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventFollowing, Actor: systemActor, MachineID: r.MachineID, ActionID: a.ID,
		Operation: string(r.Command), Reason: "action already under way, requested by " + by})
	s.logger(ctx).Info().Str("action_id", a.ID).Msg("an action of the request's type is already under way; following it")
	s.done(ctx, r, a, 0)
}

func underWayVerb(r store.Request) string {
	if r.Command == store.Unisolate {
		return "released from isolation"
	}
	return "isolated"
}

// describeRequestor says who started a and where, as MDE records it.
func describeRequestor(a defender.MachineAction) string {
	who := a.Requestor
	if who == "" {
		who = "an unknown requestor"
	}
	switch {
	case strings.EqualFold(a.RequestSource, "Portal"):
		return who + " in the portal"
	case a.RequestSource != "":
		return who + " through " + a.RequestSource
	}
	return who
}
