package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/soc/isolate-bot/store"
)

// The decide stage: Approve and Deny on a request card. Deny is a
// compare-and-set on the pending state; Approve adds the approver to the
// request's set of approvers (one compare-and-set, store.Approve) and the
// approval that completes the set — the first for most requests, the
// second different approver for a protected machine (protect.go) — hands
// the request to the send stage in this process at once (see lease.go).
// The first decision wins.

// Click handles Approve/Deny on a request card. The requester may not
// decide their own request (two-person rule); only approvers decide; the
// first decision wins and later clicks are told who decided. Approval
// starts the MDE call in the background (see Wait).
func (s *Service) Click(ctx context.Context, c Click) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	log := s.log.With().Str("request_id", c.RequestID).Str("user", c.User).Str("button", string(c.Action)).Logger()
	ctx = log.WithContext(ctx)

	r, err := s.d.Approvals.Get(ctx, c.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// No stream is made for an id that has no request: global audit only.
		unknown := c
		unknown.RequestID = ""
		s.refuseClick(ctx, unknown, "", "unknown request "+c.RequestID, msg(txt("Request "), code(c.RequestID), txt(" is unknown; nothing was decided.")))
		return nil
	case err != nil:
		s.refuseClick(ctx, c, "", "state store: "+err.Error(), msg(txt("The state store is unavailable, nothing was decided; try again shortly.")))
		return fmt.Errorf("get %s: %w", c.RequestID, err)
	}
	ctx = log.With().Str("machine", r.MachineID).Logger().WithContext(ctx)
	if !s.fromCard(ctx, c, r) {
		return nil
	}
	switch c.Action {
	case ButtonCancel:
		return s.clickCancel(ctx, c, r) // cancel_action.go
	case ButtonRelease:
		return s.clickRelease(ctx, c, r) // release.go
	case ButtonStop:
		return s.stopBulk(ctx, c, r) // bulk_decide.go
	}
	cardUnrecorded := r.Channel == "" || r.MessageTS == ""
	if cardUnrecorded {
		r.Channel, r.MessageTS = c.Channel, c.MessageTS
	}
	if !s.mayDecide(ctx, c, r) {
		return nil
	}
	if r.State != store.Pending {
		s.ephemeral(ctx, c.Channel, c.User, decidedMessage(r))
		return nil
	}
	ch := store.Change{To: store.Denied, By: c.User}
	if c.Action == ButtonApprove {
		ch = s.leases.approval(c.User)
	}
	if cardUnrecorded && c.MessageTS != "" {
		// The click beat the recording of the card's ts (the requester's
		// replica posts the card, then records it): the click comes from
		// that very card, so record its ts now or the thread is lost.
		ch.Channel, ch.MessageTS = c.Channel, c.MessageTS
	}
	if c.Action == ButtonApprove {
		return s.approve(ctx, c, r, ch)
	}
	return s.deny(ctx, c, r, ch)
}

// verbOf names what the click asked for, in refusals and audit reasons.
func verbOf(c Click) string { return string(c.Action) }

// fromCard refuses a click that does not come from r's own card: its
// channel, and its ts once recorded (before that, the click's ts is
// recorded, see Click). It returns false after refusing.
func (s *Service) fromCard(ctx context.Context, c Click, r store.Request) bool {
	if (r.Channel == "" || c.Channel == r.Channel) && (r.MessageTS == "" || c.MessageTS == r.MessageTS) {
		return true
	}
	s.refuseClick(ctx, c, r.MachineID, "not the request's card",
		msg(txt("This button is not on the card of request "), code(r.ID), txt("; nothing was decided. Use the buttons on "), threadLink(r, "its card"), txt(".")))
	return false
}

// refuseClick tells the clicker why nothing was decided and audits it
// (throttled like command refusals).
func (s *Service) refuseClick(ctx context.Context, c Click, machineID, reason string, m Message) {
	log := s.logger(ctx)
	reason = verbOf(c) + ": " + reason
	switch s.countRefusal(ctx, c.User) {
	case refusalSilent:
		log.Debug().Str("reason", reason).Msg("click refused silently: too many refusals")
		return
	case refusalSlowDown:
		reason = throttledPrefix + reason
	}
	log.Info().Str("reason", reason).Msg("click refused")
	s.ephemeral(ctx, c.Channel, c.User, m)
	s.audit(ctx, store.Event{RequestID: c.RequestID, Type: store.EventClickRefused, Actor: c.User, MachineID: machineID, Reason: reason})
}

// mayDecide enforces the two-person rule and the approvers list, read from
// Slack for this decision (mayDecideAs), failing closed when membership
// cannot be checked. It returns false after refusing.
func (s *Service) mayDecide(ctx context.Context, c Click, r store.Request) bool {
	verb := verbOf(c)
	if c.User == r.Requester {
		m := msg(txtf("You cannot %s your own request: another approver must decide (two-person rule).", verb))
		if c.Action != ButtonApprove {
			m.Spans = append(m.Spans, txt(" To withdraw it, use "), code("/isolate cancel "+r.ID), txt("."))
		}
		s.refuseClick(ctx, c, r.MachineID, "own request", m)
		return false
	}
	ok, err := s.mayDecideAs(ctx, c.User, s.cfg.Approvers)
	if err != nil && !ok {
		s.refuseClick(ctx, c, r.MachineID, "membership check failed: "+err.Error(),
			msg(txt("I could not check your user-group membership with Slack, so nothing was decided (fail closed); try again shortly.")))
		return false
	}
	if !ok {
		s.refuseClick(ctx, c, r.MachineID, "not an approver", msg(txtf("Only approvers can %s isolation requests; you are not one of them.", verb)))
		return false
	}
	return true
}

// decidedFirst tells the clicker that cur (the request as it is now) was
// decided before their click could count.
func (s *Service) decidedFirst(ctx context.Context, c Click, r, cur store.Request) {
	if cur.Channel == "" || cur.MessageTS == "" {
		cur.Channel, cur.MessageTS = r.Channel, r.MessageTS
	}
	if cur.State == store.Expired && cur.DecidedBy == systemActor {
		// The store expired it on this very call (nothing else would
		// announce it: the scheduler only sees open requests).
		s.announceExpired(ctx, cur)
	}
	s.ephemeral(ctx, c.Channel, c.User, decidedMessage(cur))
}

var storeDownClick = msg(txt("The state store is unavailable, nothing was decided; try again shortly."))

// approve adds c.User to pending r's approvers (ch is the approval). The
// approval that completes the set tells the card, the thread and the audit
// log and starts sending; one that leaves it incomplete keeps the card
// pending (Approve stays) and says how many more are needed; a repeated
// approver counts once and is told so.
func (s *Service) approve(ctx context.Context, c Click, r store.Request, ch store.Change) error {
	d, how, err := s.d.Approvals.Approve(ctx, r.ID, ch)
	if cur, ok := lost(err); ok {
		s.decidedFirst(ctx, c, r, cur)
		return nil
	}
	switch {
	case errors.Is(err, store.ErrSelfApproval): // mayDecide refused this already; the store agrees
		s.refuseClick(ctx, c, r.MachineID, "own request", msg(txt("You cannot approve your own request: another approver must decide (two-person rule).")))
		return nil
	case err != nil:
		s.ephemeral(ctx, c.Channel, c.User, storeDownClick)
		return fmt.Errorf("approve %s: %w", r.ID, err)
	}
	if d.Channel == "" || d.MessageTS == "" {
		d.Channel, d.MessageTS = r.Channel, r.MessageTS
	}
	log := s.logger(ctx)
	switch how {
	case store.ApprovalRepeated:
		s.refuseClick(ctx, c, d.MachineID, "already approved by this approver",
			msg(txt("You have already approved request "), code(d.ID), txtf("; it needs %d different approvers, so another approver (not the requester) must approve it too.", d.Required())))
		return nil
	case store.ApprovalCounted:
		s.updateCard(ctx, d)
		s.reply(ctx, d, moreApprovalsMessage(d, c.User, hhmm(d.UpdatedAt)))
		s.audit(ctx, store.Event{RequestID: d.ID, Type: store.EventApproved, Actor: c.User, MachineID: d.MachineID, Reason: s.approvalReason(d)})
		log.Info().Int("approvals", len(d.ApprovedBy)).Int("needed", d.Required()).Msg("approval counted; more needed")
		return nil
	}
	s.updateCard(ctx, d)
	s.reply(ctx, d, approvedMessage(d, c.User, hhmm(d.DecidedAt)))
	s.audit(ctx, store.Event{RequestID: d.ID, Type: store.EventApproved, Actor: c.User, MachineID: d.MachineID, Reason: s.approvalReason(d)})
	log.Info().Msg("approved")
	s.startExecution(d)
	return nil
}

// deny records the denial ch on pending r and tells the card, the thread
// and the audit log.
func (s *Service) deny(ctx context.Context, c Click, r store.Request, ch store.Change) error {
	d, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, ch)
	if cur, ok := lost(err); ok {
		s.decidedFirst(ctx, c, r, cur)
		return nil
	}
	if err != nil {
		s.ephemeral(ctx, c.Channel, c.User, storeDownClick)
		return fmt.Errorf("decide %s: %w", r.ID, err)
	}
	if d.Channel == "" || d.MessageTS == "" {
		d.Channel, d.MessageTS = r.Channel, r.MessageTS
	}
	s.updateCard(ctx, d)
	log := s.logger(ctx)
	s.reply(ctx, d, msg(txt("Denied by "), who(c.User), txtf(" at %s; nothing was sent to MDE.", hhmm(d.DecidedAt))))
	s.audit(ctx, store.Event{RequestID: d.ID, Type: store.EventDenied, Actor: c.User, MachineID: d.MachineID, Reason: s.via()})
	log.Info().Msg("denied")
	return nil
}
