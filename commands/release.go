package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/soc/isolate-bot/store"
)

// clickRelease handles Release on the card of an isolation that
// succeeded: it opens a release (/unisolate) request for the same machine,
// by the clicker, exactly as the command would (allow-lists, MDE's state,
// a new card in the card's channel, the two-person rule), and links the
// new card from the isolation's thread.
func (s *Service) clickRelease(ctx context.Context, c Click, r store.Request) error {
	refuse := func(reason string, m Message) { s.refuseClick(ctx, c, r.MachineID, reason, m) }
	if r.Command != store.Isolate || r.State != store.Done {
		refuse("no succeeded isolation", msg(txt("Release is offered once an isolation has succeeded; request "), code(r.ID),
			txtf(" is a %s that is %s. Use ", commandVerb(r.Command), r.State), code(UsageUnisolate), txt(" if the machine needs releasing.")))
		return nil
	}
	inv := Invocation{Command: "/unisolate", User: c.User, Channel: r.Channel, TriggerID: c.TriggerID, DeliveryID: "release:" + r.ID}
	p := Parsed{Op: OpUnisolate, Machine: r.MachineID, MachineIsID: true, Comment: fmt.Sprintf("release of %s, requested from its card", r.ID)}
	if err := s.request(ctx, inv, p); err != nil {
		return err
	}
	nr, err := s.d.Approvals.ForMachine(ctx, r.MachineID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("find the release request of %s: %w", r.ID, err)
	}
	if err != nil || nr.ID == r.ID || nr.Command != store.Unisolate || nr.Requester != c.User || nr.State != store.Pending {
		return nil // refused: request told the clicker why
	}
	s.reply(ctx, r, msg(txt("Release requested by "), who(c.User), txt(": "), threadLink(nr, "request "+nr.ID), txt(", waiting for an approver.")))
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventReleaseRequested, Actor: c.User, MachineID: r.MachineID, Reason: nr.ID + " " + s.via()})
	s.logger(ctx).Info().Str("release_request_id", nr.ID).Msg("release requested from the card")
	return nil
}
