package commands

import (
	"context"
	"fmt"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Stop a mistake: the requester or an approver cancels a request's MDE
// action while it is Pending or InProgress, from the card's Cancel button
// or with /isolate cancel r-N. The request then ends failed, noting who
// cancelled (the store's states: an executing request ends done or
// failed).

// refuser tells the caller privately why nothing was done, and audits it.
type refuser func(reason string, m Message)

// mayCancel reports whether user may cancel r: its requester, or an
// approver (membership read from Slack for this decision, failing closed).
// It refuses before returning false.
func (s *Service) mayCancel(ctx context.Context, user string, r store.Request, refuse refuser) bool {
	if user == r.Requester {
		return true
	}
	ok, err := s.mayDecideAs(ctx, user, s.cfg.Approvers)
	if ok {
		return true
	}
	reason := "not requester or approver"
	m := msg(txt("Only the requester ("), who(r.Requester), txt(") or an approver can cancel "), code(r.ID), txt("; nothing was cancelled."))
	if err != nil {
		reason = "membership check failed: " + err.Error()
		m = msg(txt("I could not check your user-group membership with Slack, so nothing was cancelled (fail closed); try again shortly."))
	}
	refuse(reason, m)
	return false
}

// cancelAction asks MDE to cancel r's action for user by and ends r. The
// thread, the card and the audit log hear of it; refuse tells by why
// nothing was done. It reports whether MDE cancelled the action.
func (s *Service) cancelAction(ctx context.Context, by string, r store.Request, refuse refuser) bool {
	if r.MachineActionID == "" {
		refuse("no MDE action yet", msg(txt("Request "), code(r.ID), txt(" has no MDE action yet (it is being sent to MDE); nothing was cancelled. Try again in a moment, or use the MDE portal.")))
		return false
	}
	a, err := s.readAction(ctx, r.MachineActionID)
	if err != nil {
		refuse("read MDE action: "+err.Error(), msg(txt("I could not read MDE action "), code(r.MachineActionID), txt(", so nothing was cancelled: "), txt(plain(describeMDEError(err)))))
		return false
	}
	if a.Final() {
		refuse("MDE action "+a.Status, finalActionMessage(r, a))
		return false
	}
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	ca, err := s.d.Defender.CancelMachineAction(callCtx, nil, a.ID, cancelComment(r, by, s.d.Transport))
	if err != nil {
		apiErr := asAPIError(err)
		e := store.Event{RequestID: r.ID, Type: store.EventMDECall, Actor: by, MachineID: r.MachineID, Operation: "cancel", ActionID: a.ID, Reason: "cancel refused"}
		if apiErr != nil {
			e.StatusCode, e.CorrelationID = apiErr.Status, apiErr.Target
		}
		s.audit(ctx, e)
		if now, rerr := s.readAction(ctx, a.ID); rerr == nil && now.Final() {
			refuse("MDE action "+now.Status, finalActionMessage(r, now)) // it ended meanwhile
			return false
		}
		refuse("cancel failed: "+err.Error(), msg(txt("MDE did not cancel action "), code(a.ID), txt(": "), txt(plain(describeMDEError(err)))))
		return false
	}
	if ca.ID == "" {
		ca = a
		ca.Status = defender.StatusCancelled
	}
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventMDECall, Actor: by, MachineID: r.MachineID, Operation: "cancel", ActionID: a.ID, StatusCode: 200})
	s.endCancelled(ctx, by, r, ca)
	return true
}

// endCancelled ends r (executing, followed by some replica) as failed
// after by cancelled its action ca, then tells the card, the thread and
// the audit log. The end is a compare-and-set on r's version, retried
// while the follower renews its lease; if the follower saw the
// cancellation first and ended r itself, that end stands.
func (s *Service) endCancelled(ctx context.Context, by string, r store.Request, ca defender.MachineAction) {
	note := fmt.Sprintf("cancelled by %s %s: MDE action %s %s", by, s.via(), ca.ID, ca.Status)
	cur := r
	for range 5 {
		if cur.State.Terminal() {
			break
		}
		ended, err := s.d.Approvals.Transition(ctx, cur.ID, cur.State, store.Change{To: store.Failed, By: by, IfVersion: cur.Version, MachineActionID: ca.ID, Note: note})
		if err == nil {
			cur = ended
			break
		}
		latest, ok := lost(err)
		if !ok {
			s.logger(ctx).Error().Err(err).Msg("MDE cancelled the action but the request could not be ended; its follower ends it")
			break
		}
		cur = latest
	}
	if cur.Channel == "" || cur.MessageTS == "" {
		cur.Channel, cur.MessageTS = r.Channel, r.MessageTS
	}
	if cur.MessageTS != "" {
		if err := s.d.Messenger.UpdateCard(ctx, cur.Channel, cur.MessageTS, s.card(cur, defender.Machine{}, &ca)); err != nil {
			s.logger(ctx).Error().Err(err).Msg("could not update the request card")
		}
	}
	out := msg(bold("Cancelled"), txt(" by "), who(by), txt(": MDE action "), code(ca.ID), txtf(" is %s; the %s will not be carried out.", ca.Status, commandVerb(r.Command)))
	out.Action = &ca
	s.reply(ctx, cur, out)
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventCancelled, Actor: by, MachineID: r.MachineID, ActionID: ca.ID, Reason: "MDE action cancelled " + s.via()})
	s.logger(ctx).Info().Str("action_id", ca.ID).Str("state", string(cur.State)).Msg("MDE action cancelled")
}

// cancelComment is the MDE comment of a cancellation: the request's
// marker first (as on every isolate-bot comment), then who cancelled.
func cancelComment(r store.Request, by, via string) string {
	return fmt.Sprintf("%s Cancelled by %s via %s", Marker(r.ID), by, via)
}

// finalActionMessage says r's action has ended and cannot be cancelled.
func finalActionMessage(r store.Request, a defender.MachineAction) Message {
	m := msg(txt("MDE action "), code(a.ID), txtf(" of request %s is already %s; there is nothing to cancel.", r.ID, a.Status))
	if r.Command == store.Isolate && a.Status == defender.StatusSucceeded {
		m.Spans = append(m.Spans, txt(" To lift the isolation, use Release on the card or "), code(UsageUnisolate), txt("."))
	}
	m.Action = &a
	return m
}

// readAction reads one MDE action within CallTimeout.
func (s *Service) readAction(ctx context.Context, id string) (defender.MachineAction, error) {
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	a, err := s.d.Defender.MachineAction(callCtx, id)
	if err != nil {
		return a, fmt.Errorf("read MDE action %s: %w", id, err)
	}
	return a, nil
}

// clickCancel handles Cancel on a card.
func (s *Service) clickCancel(ctx context.Context, c Click, r store.Request) error {
	refuse := func(reason string, m Message) { s.refuseClick(ctx, c, r.MachineID, reason, m) }
	if !s.mayCancel(ctx, c.User, r, refuse) {
		return nil
	}
	switch r.State {
	case store.Executing:
		s.cancelAction(ctx, c.User, r, refuse)
	case store.Pending:
		refuse("still pending", msg(txt("Request "), code(r.ID), txt(" is still pending: deny it, or withdraw it with "), code("/isolate cancel "+r.ID), txt(".")))
	default:
		refuse("not executing", withOnlyPending(decidedMessage(r)))
	}
	return nil
}
