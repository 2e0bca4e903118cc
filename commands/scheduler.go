package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/soc/isolate-bot/store"
)

// dueBatch bounds one scheduler pass.
const dueBatch = 50

// Tick is one scheduler pass over due requests (internal/app calls it on
// a ticker, on every replica): pending ones past their
// expiry are expired; approved ones nobody claimed, and executing ones whose
// owner stopped renewing (CheckAt passed), are executed in the background
// (exactly one replica wins each, and a taken-over request is reconciled
// with MDE before any call).
func (s *Service) Tick(ctx context.Context) error {
	if ids, err := s.follows.Followed(ctx); err == nil && len(ids) > 0 {
		s.poller.ensure() // follows them if this replica holds (or takes) the poller lease
	}
	due, err := s.d.Approvals.Due(ctx, dueBatch)
	if err != nil {
		return fmt.Errorf("scheduler: list due requests: %w", err)
	}
	var errs []error
	for _, r := range due {
		switch r.State {
		case store.Pending:
			if s.now().Before(r.ExpiresAt) {
				continue
			}
			if err := s.expire(ctx, r); err != nil {
				errs = append(errs, err)
			}
		case store.Approved, store.Executing:
			if s.leases.runsLocal(r.ID) {
				continue // this process is on it
			}
			s.startExecution(r)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) expire(ctx context.Context, r store.Request) error {
	ctx = s.log.With().Str("request_id", r.ID).Str("machine", r.MachineID).Logger().WithContext(ctx)
	e, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Expired, By: systemActor, Note: "expired without a decision"})
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		return nil // decided meanwhile, or another replica expired it
	case err != nil:
		return fmt.Errorf("expire %s: %w", r.ID, err)
	}
	s.announceExpired(ctx, e)
	return nil
}

// announceExpired records an expiry on the card, in the thread and in the
// audit log, whichever call (a tick or a late click) made the store expire it.
func (s *Service) announceExpired(ctx context.Context, e store.Request) {
	s.updateCard(ctx, e)
	s.reply(ctx, e, msg(txtf("Expired without a decision at %s; nothing was sent to MDE. Request again if still needed.", hhmm(e.ExpiresAt))))
	s.audit(ctx, store.Event{RequestID: e.ID, Type: store.EventExpired, Actor: systemActor, MachineID: e.MachineID})
	s.logger(ctx).Info().Str("request_id", e.ID).Msg("request expired")
}
