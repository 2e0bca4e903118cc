package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/soc/isolate-bot/store"
)

// Click handles Approve/Deny on a request card. The requester may not
// decide their own request (two-person rule); only approvers decide; the
// first decision wins and later clicks are told who decided. Approval
// starts the MDE call in the background (see Wait).
func (s *Service) Click(ctx context.Context, c Click) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	log := s.log.With().Str("request_id", c.RequestID).Str("user", c.User).Bool("approve", c.Approve).Logger()
	ctx = log.WithContext(ctx)
	verb := "deny"
	if c.Approve {
		verb = "approve"
	}
	refuse := func(machineID, reason string, m Message) {
		log.Info().Str("reason", reason).Msg("click refused")
		s.ephemeral(ctx, c.Channel, c.User, m)
		s.audit(ctx, store.Event{RequestID: c.RequestID, Type: store.EventClickRefused, Actor: c.User, MachineID: machineID, Reason: verb + ": " + reason})
	}

	r, err := s.d.Approvals.Get(ctx, c.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		refuse("", "unknown request", msg(txt("Request "), code(c.RequestID), txt(" is unknown; nothing was decided.")))
		return nil
	case err != nil:
		refuse("", "state store: "+err.Error(), msg(txt("The state store is unavailable, nothing was decided; try again shortly.")))
		return fmt.Errorf("get %s: %w", c.RequestID, err)
	}
	log = log.With().Str("machine", r.MachineID).Logger()
	ctx = log.WithContext(ctx)
	cardUnrecorded := r.Channel == "" || r.MessageTS == ""
	if cardUnrecorded {
		r.Channel, r.MessageTS = c.Channel, c.MessageTS
	}
	if c.User == r.Requester {
		m := msg(txtf("You cannot %s your own request: another approver must decide (two-person rule).", verb))
		if !c.Approve {
			m.Spans = append(m.Spans, txt(" To withdraw it, use "), code("/isolate cancel "+r.ID), txt("."))
		}
		refuse(r.MachineID, "own request", m)
		return nil
	}
	ok, err := s.isMember(ctx, c.User, s.cfg.Approvers)
	if err != nil && !ok {
		refuse(r.MachineID, "membership check failed: "+err.Error(),
			msg(txt("I could not check your user-group membership with Slack, so nothing was decided (fail closed); try again shortly.")))
		return nil
	}
	if !ok {
		refuse(r.MachineID, "not an approver", msg(txtf("Only approvers can %s isolation requests; you are not one of them.", verb)))
		return nil
	}
	if r.State != store.Pending {
		s.ephemeral(ctx, c.Channel, c.User, decidedMessage(r))
		return nil
	}

	ch := store.Change{To: store.Denied, By: c.User}
	if c.Approve {
		// The approver's process claims it at once; the scheduler only
		// steps in if that process dies first.
		ch = store.Change{To: store.Approved, By: c.User, CheckAt: s.now().Add(s.lease())}
	}
	if cardUnrecorded && c.MessageTS != "" {
		// The click beat the recording of the card's ts (the requester's
		// replica posts the card, then records it): the click comes from
		// that very card, so record its ts now or the thread is lost.
		ch.Channel, ch.MessageTS = c.Channel, c.MessageTS
	}
	d, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, ch)
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		cur := ce.Current
		if cur.Channel == "" || cur.MessageTS == "" {
			cur.Channel, cur.MessageTS = r.Channel, r.MessageTS
		}
		if cur.State == store.Expired && cur.DecidedBy == systemActor && r.State == store.Pending {
			// The store expired it on this very call (nothing else would
			// announce it: the scheduler only sees open requests).
			s.announceExpired(ctx, cur)
		}
		s.ephemeral(ctx, c.Channel, c.User, decidedMessage(cur))
		return nil
	case err != nil:
		s.ephemeral(ctx, c.Channel, c.User, msg(txt("The state store is unavailable, nothing was decided; try again shortly.")))
		return fmt.Errorf("decide %s: %w", r.ID, err)
	}
	if d.Channel == "" || d.MessageTS == "" {
		d.Channel, d.MessageTS = r.Channel, r.MessageTS
	}
	s.updateCard(ctx, d)
	if c.Approve {
		s.reply(ctx, d, msg(txt("Approved by "), who(c.User), txtf(" at %s; sending to MDE.", hhmm(d.DecidedAt))))
		s.audit(ctx, store.Event{RequestID: d.ID, Type: store.EventApproved, Actor: c.User, MachineID: d.MachineID})
		log.Info().Msg("approved")
		s.startExecution(d)
		return nil
	}
	s.reply(ctx, d, msg(txt("Denied by "), who(c.User), txtf(" at %s; nothing was sent to MDE.", hhmm(d.DecidedAt))))
	s.audit(ctx, store.Event{RequestID: d.ID, Type: store.EventDenied, Actor: c.User, MachineID: d.MachineID})
	log.Info().Msg("denied")
	return nil
}
