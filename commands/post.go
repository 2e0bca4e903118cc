package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// The rate limiter's errors under the names the send loop matches.
type (
	// RateLimitError: the next free slot is later than the request may
	// wait; nothing was sent to MDE.
	RateLimitError = ratelimit.RateLimitError
)

// ErrLimiterUnavailable: the shared rate limiter could not be asked, so no
// MDE call was sent (fail closed).
var ErrLimiterUnavailable = ratelimit.ErrUnavailable

// post makes one Isolate/Unisolate call. It reserves the call's slot first;
// a future slot is recorded on r and announced without waiting for Slack.
// The wait for the slot is here, not in the Defender, so Stop ends it
// (errStopped, the slot given back) while a call already sent is never
// cut; the call's own deadline is CallTimeout from its slot. recheck
// re-reads the isolation state first (see underway.go): before the slot,
// not after its wait, so a read waiting for its own budget never moves
// the call off the slot the limiter booked.
func (s *Service) post(ctx context.Context, r *store.Request, recheck bool) (defender.MachineAction, error) {
	if recheck {
		if err := s.recheck(ctx, *r); err != nil {
			return defender.MachineAction{}, err
		}
	}
	ticket, err := s.reserveSlot(ctx, r)
	if err != nil {
		return defender.MachineAction{}, err
	}
	var slot defender.Slot // nil: the Defender admits the call through its own Gate
	if ticket != nil {
		// Gives the slot back if the Defender never sent (e.g. it refused
		// the input); a no-op once the wait has ended.
		defer ticket.Release()
		if err := s.waitSlot(ctx, ticket); err != nil {
			return defender.MachineAction{}, err
		}
		slot = ticket // waited on: the Defender's Wait returns at once
	}
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	comment := MDECommentVia(*r, s.d.Transport)
	if r.Command == store.Unisolate {
		return s.d.Defender.Unisolate(callCtx, slot, r.MachineID, comment)
	}
	return s.d.Defender.Isolate(callCtx, slot, r.MachineID, defender.IsolationType(r.IsolationType), comment)
}

// waitSlot waits for t's slot; Stop ends the wait with errStopped and the
// slot goes back to the budget.
func (s *Service) waitSlot(ctx context.Context, t *ratelimit.Ticket) error {
	wctx, cancel := s.untilStop(ctx)
	defer cancel()
	err := t.Wait(wctx)
	if err != nil && ctx.Err() == nil && s.stopping() {
		return fmt.Errorf("%w: queued for %s", errStopped, t.Budget)
	}
	return err
}

// reserveSlot takes r's rate-limit slot (nil without a Gate). A slot in the
// future is recorded as RunAt/CheckAt with a version check (a replica that
// lost the request gets *store.ConflictError and gives the slot back),
// audited, and announced in the thread in the background.
func (s *Service) reserveSlot(ctx context.Context, r *store.Request) (*ratelimit.Ticket, error) {
	if s.d.Gate == nil {
		return nil, nil
	}
	budget := defender.BudgetIsolate
	if r.Command == store.Unisolate {
		budget = defender.BudgetUnisolate
	}
	t, err := s.d.Gate.Reserve(ctx, budget)
	if err != nil {
		return nil, err
	}
	if !t.At.After(s.now()) {
		return t, nil
	}
	nr, err := s.leases.holdUntil(ctx, *r, t.At)
	if err != nil {
		t.Release()
		return nil, fmt.Errorf("record queue slot of %s: %w", r.ID, err)
	}
	*r = nr
	// The audit is a store write like the Transition: kept in line, so the
	// trail always shows queued before the MDE call.
	s.audit(ctx, store.Event{RequestID: nr.ID, Type: store.EventQueued, Actor: systemActor, MachineID: nr.MachineID, Reason: "runs at " + t.At.UTC().Format(time.RFC3339)})
	s.announceQueued(ctx, nr, t.At)
	return t, nil
}

// announceQueued tells r's thread when its call will run, in the
// background: Slack throttles posts exactly when requests queue, and the
// call must not wait for it.
func (s *Service) announceQueued(ctx context.Context, r store.Request, at time.Time) {
	log := s.logger(ctx)
	s.goBackground(func(bg context.Context) {
		s.reply(log.WithContext(bg), r, msg(txtf("Queued behind the MDE rate limit; expected to run at %s.", hhmmss(at))))
	})
}
