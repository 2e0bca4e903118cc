package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/soc/isolate-bot/store"
)

// cancel runs /isolate cancel r-N: a pending request is withdrawn; an
// executing one has its MDE action cancelled (cancel_action.go).
func (s *Service) cancel(ctx context.Context, inv Invocation, p Parsed) error {
	r, err := s.d.Approvals.Get(ctx, p.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.refuse(ctx, inv, "", "unknown request "+p.RequestID, msg(txt("There is no request "), code(p.RequestID), txt(".")))
		return nil
	case err != nil:
		s.refuse(ctx, inv, "", "state store: "+err.Error(), msg(txt("The state store is unavailable, nothing was cancelled; try again shortly.")))
		return fmt.Errorf("get %s: %w", p.RequestID, err)
	}
	refuse := func(reason string, m Message) { s.refuse(ctx, inv, r.MachineID, reason, m) }
	if !s.mayCancel(ctx, inv.User, r, refuse) {
		return nil
	}
	switch r.State {
	case store.Pending:
	case store.Executing:
		// MDE has (or is getting) the action: cancel it there.
		if s.cancelAction(ctx, inv.User, r, refuse) {
			s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("Request "), code(r.ID), txt("'s MDE action is cancelled.")))
		}
		return nil
	default:
		s.refuse(ctx, inv, r.MachineID, "not pending", withOnlyPending(decidedMessage(r)))
		return nil
	}
	c, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Cancelled, By: inv.User, Note: "cancelled with /isolate cancel"})
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		s.refuse(ctx, inv, r.MachineID, "not pending", withOnlyPending(decidedMessage(ce.Current)))
		return nil
	case err != nil:
		s.refuse(ctx, inv, r.MachineID, "state store: "+err.Error(), msg(txt("The state store is unavailable, nothing was cancelled; try again shortly.")))
		return fmt.Errorf("cancel %s: %w", r.ID, err)
	}
	s.updateCard(ctx, c)
	s.reply(ctx, c, msg(txt("Cancelled by "), who(inv.User), txt(" before a decision; nothing was sent to MDE.")))
	s.audit(ctx, store.Event{RequestID: c.ID, Type: store.EventCancelled, Actor: inv.User, MachineID: c.MachineID, Reason: "cancelled by command " + s.via()})
	s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("Request "), code(c.ID), txt(" is cancelled.")))
	return nil
}

func withOnlyPending(m Message) Message {
	m.Spans = append(m.Spans, txt(" Only pending requests, and executing ones whose MDE action is Pending or InProgress, can be cancelled."))
	return m
}
