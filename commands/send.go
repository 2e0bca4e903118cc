package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// The send stage: an approved request's one Isolate/Unisolate call to MDE,
// within the rate limit, with 429s, unknown outcomes and takeovers by
// other replicas reconciled so that MDE gets the call once (classify says
// what each error means). Once MDE accepts it, the follow stage takes over.

// noteStoreDown marks a request whose thread was told once that the state
// store is down, so retries do not repeat it.
const noteStoreDown = "state store unavailable, will retry"

// noteUnreachable is the request's Note while it backs off after MDE could
// not be reached: the count of failed tries, so a replica that takes it
// over carries on the count (see unreachableTries).
const noteUnreachable = "MDE unreachable, %d failed tries, will retry"

// unreachableTries is the count of failed tries recorded by note, 0 if
// note is not a back-off note.
func unreachableTries(note string) int {
	var n int
	if _, err := fmt.Sscanf(note, noteUnreachable, &n); err != nil {
		return 0
	}
	return n
}

// startExecution runs r (approved, or executing and stranded) in the
// background unless this process already runs it.
func (s *Service) startExecution(r store.Request) {
	if isBulk(r) { // outbreak mode: a batch, not one call (bulk_decide.go)
		s.startBulk(r)
		return
	}
	if !s.leases.runLocal(r.ID) {
		return
	}
	s.goBackground(func(ctx context.Context) {
		defer s.leases.doneLocal(r.ID)
		s.execute(ctx, r)
	})
}

// execute claims r (exactly one replica wins), or takes over a stranded
// one and reconciles it with MDE, then sends it.
func (s *Service) execute(ctx context.Context, r store.Request) {
	log := s.log.With().Str("request_id", r.ID).Str("machine", r.MachineID).Logger()
	ctx = log.WithContext(ctx)
	var err error
	switch r.State {
	case store.Approved:
		if r, err = s.leases.claim(ctx, r); err != nil {
			log.Info().Err(err).Msg("not claimed; another replica runs it or the store is down (the scheduler retries)")
			return
		}
	case store.Executing:
		// A replica died mid-flight or while queued: take over exactly once.
		if r, err = s.leases.takeOver(ctx, r); err != nil {
			log.Info().Err(err).Msg("takeover lost or store down")
			return
		}
		if r.MachineActionID != "" {
			s.resumeFollow(ctx, r)
			return
		}
		log.Warn().Msg("took over a stranded request; reconciling with MDE before any call")
		a, found, err := s.findMarked(ctx, r)
		if err != nil {
			s.retryLater(ctx, r, retryNote("could not read MDE's actions to reconcile", err))
			return
		}
		if found {
			s.done(ctx, r, a, 0)
			return
		}
	default:
		return
	}
	s.send(ctx, r)
}

// send calls MDE for r until MDE has the action or the request ends or
// changes hands; classify decides what each failure means.
func (s *Service) send(ctx context.Context, r store.Request) {
	log := s.logger(ctx)
	try := sendTry{queueMaxWait: s.cfg.QueueMaxWait, unavailable: unreachableTries(r.Note), backoff: s.cfg.ResendBackoff}
	resent := false
	for first := true; !s.stopping(); first = false {
		// Renew our lease before every attempt, so no replica takes over
		// while a call may be in flight.
		nr, err := s.leases.renew(ctx, r, s.leases.callLease())
		if _, ok := lost(err); ok {
			log.Warn().Msg("request taken over by another replica; not sending")
			return
		}
		if err != nil {
			s.retryLater(ctx, r, noteStoreDown)
			return
		}
		r = nr
		a, err := s.post(ctx, &r, first)
		if err == nil {
			s.done(ctx, r, a, 201)
			return
		}
		calledAt := s.now()
		if ctx.Err() != nil {
			// Aborted: the request stays executing; a scheduler reconciles it.
			log.Warn().Err(err).Msg("aborted during the MDE call")
			return
		}
		o := classify(err, try)
		apiErr := asAPIError(err)
		if o.call != "" {
			s.auditCall(ctx, r, apiErr, o.call)
		}
		var again bool
		switch o.verdict {
		case notOurs:
			log.Warn().Msg("request taken over by another replica while queued; not sending")
		case stopped:
			log.Info().Msg("stopping while queued; the lease hands the request on")
		case handBack:
			s.retryLater(ctx, r, noteStoreDown)
		case sendLater:
			try.throttled++
			r, again = s.waitToResend(ctx, r, o.after)
		case backOff:
			try.unavailable++
			r, again = s.backOff(ctx, r, try.unavailable, o.after, err)
		case reconcileFirst:
			r, again = s.reconcile(ctx, r, apiErr, resent, calledAt)
			resent = true
		case actionUnderWay:
			try.underWay++
			again = s.sendUnderWay(ctx, r, err, apiErr)
		case fail:
			log.Error().Err(err).Msg("MDE call failed")
			s.fail(ctx, r, o.why, apiErr, nil)
		}
		if !again {
			return
		}
	}
	log.Info().Msg("stopping before the MDE call; the lease hands the request on")
}

// waitToResend holds r through a 429's wait, tells the thread, and waits.
// It reports whether to send again: false when Stop cut the wait short.
func (s *Service) waitToResend(ctx context.Context, r store.Request, wait time.Duration) (store.Request, bool) {
	at := s.now().Add(wait)
	if nr, err := s.leases.holdUntil(ctx, r, at); err == nil {
		r = nr
	}
	s.reply(ctx, r, msg(txtf("MDE throttled us (HTTP 429); retrying at %s.", hhmmss(at))))
	return r, s.waitUntil(ctx, at)
}

// backOff holds r until its next try after the n-th call that reached
// nobody, recording n on r so a replica that takes it over keeps the
// schedule, tells the thread on the first, and waits. It reports whether
// to send again.
func (s *Service) backOff(ctx context.Context, r store.Request, n int, wait time.Duration, cause error) (store.Request, bool) {
	at := s.now().Add(wait)
	nr, err := s.leases.holdForRetry(ctx, r, at, fmt.Sprintf(noteUnreachable, n))
	if cur, ok := lost(err); ok {
		s.logger(ctx).Warn().Str("state", string(cur.State)).Msg("no longer ours; the new owner carries on")
		return r, false
	}
	if err != nil {
		s.retryLater(ctx, r, noteStoreDown)
		return r, false
	}
	r = nr
	s.logger(ctx).Warn().Err(cause).Int("failed_tries", n).Time("next_try", at).Msg("MDE could not be reached; will send again")
	if n == 1 {
		last := at
		for _, w := range s.cfg.ResendBackoff[n:] {
			last = last.Add(w)
		}
		s.reply(ctx, r, msg(txtf("%s; nothing was sent. Trying again at %s, then with back-off until about %s; the request stays approved meanwhile.",
			unreachable(cause), hhmmss(at), hhmm(last))))
	}
	return r, s.waitUntil(ctx, at)
}

// reconcile looks for the action a call with an unknown outcome may have
// created, at each of Config.ReconcileChecks after the call, holding r meanwhile.
// It reports whether to send once more; otherwise the request was
// finished, failed or handed back here, or Stop cut the looking short and
// the hold's lease hands r to a replica that reconciles first.
func (s *Service) reconcile(ctx context.Context, r store.Request, apiErr *defender.APIError, resent bool, calledAt time.Time) (store.Request, bool) {
	nr, err := s.leases.holdUntil(ctx, r, calledAt.Add(s.cfg.ReconcileChecks[len(s.cfg.ReconcileChecks)-1]))
	if cur, ok := lost(err); ok {
		s.logger(ctx).Warn().Str("state", string(cur.State)).Msg("no longer ours; the new owner reconciles")
		return r, false
	}
	if err != nil {
		s.retryLater(ctx, r, noteStoreDown)
		return r, false
	}
	r = nr
	for _, after := range s.cfg.ReconcileChecks {
		if !s.waitUntil(ctx, calledAt.Add(after)) {
			s.logger(ctx).Info().Msg("stopping while reconciling; the lease hands the request on")
			return r, false
		}
		a, found, err := s.findMarked(ctx, r)
		switch {
		case err != nil:
			s.retryLater(ctx, r, retryNote("MDE did not confirm the call and its actions could not be read", err))
			return r, false
		case found:
			s.done(ctx, r, a, 0)
			return r, false
		}
	}
	if resent {
		s.fail(ctx, r, "MDE did not confirm the call twice; check the MDE portal (Action center) for this machine before requesting again.", apiErr, nil)
		return r, false
	}
	s.reply(ctx, r, msg(txtf("MDE did not confirm the call and has listed no action for it after %s; sending it once more.", s.cfg.ReconcileChecks[len(s.cfg.ReconcileChecks)-1])))
	return r, true
}

// fail ends r, which we own, as failed with a plain-words reason. A
// replica that no longer owns r (its lease ran out and another took over)
// is refused by the version check and says nothing.
func (s *Service) fail(ctx context.Context, r store.Request, why string, apiErr *defender.APIError, action *defender.MachineAction) {
	e := store.Event{RequestID: r.ID, Type: store.EventFailed, Actor: systemActor, MachineID: r.MachineID, Reason: why}
	out := msg(bold("Failed: "), txt(why))
	if apiErr != nil {
		e.StatusCode, e.CorrelationID = apiErr.Status, apiErr.Target
		if apiErr.Target != "" {
			out.Spans = append(out.Spans, txt(" MDE correlation id: "), code(apiErr.Target))
		}
	}
	if action != nil {
		e.ActionID = action.ID
		out.Action = action
	}
	f, err := s.leases.end(ctx, r, store.Failed, "", why)
	if cur, ok := lost(err); ok {
		s.logger(ctx).Warn().Str("state", string(cur.State)).Str("reason", why).Msg("no longer ours (another replica owns or finished it); not failing it")
		return
	}
	if err != nil {
		s.logger(ctx).Error().Err(err).Msg("could not record the failure")
	} else {
		r = f
	}
	s.reply(ctx, r, out)
	s.audit(ctx, e)
	s.logger(ctx).Warn().Str("reason", why).Msg("request failed")
}

// retryLater hands r back to the schedulers (see leases.handBack), which
// resume it reconciling first. The thread is told once per cause.
func (s *Service) retryLater(ctx context.Context, r store.Request, why string) {
	if ctx.Err() != nil {
		return // shutting down: the lease expiry hands it to a scheduler
	}
	s.logger(ctx).Warn().Str("reason", why).Msg("will retry")
	// If the store is down this fails too; the lease runs out soon anyway.
	err := s.leases.handBack(ctx, r, why)
	if cur, ok := lost(err); ok {
		s.logger(ctx).Warn().Str("state", string(cur.State)).Msg("no longer ours; the new owner carries on")
		return
	}
	if err != nil {
		s.logger(ctx).Warn().Err(err).Msg("could not schedule the retry; the lease expiry will")
	}
	if r.Note == why {
		return
	}
	s.reply(ctx, r, msg(txtf("Nothing was sent to MDE yet: %s; will retry.", strings.TrimSuffix(why, ", will retry"))))
}

// retryNote is the thread note for a retry; every store failure shares one
// note so the thread hears about an outage once.
func retryNote(what string, err error) string {
	if errors.Is(err, ErrLimiterUnavailable) || errors.Is(err, store.ErrUnavailable) {
		return noteStoreDown
	}
	return what + ": " + describeMDEError(err)
}

// auditCall records one MDE call that did not create an action.
func (s *Service) auditCall(ctx context.Context, r store.Request, apiErr *defender.APIError, reason string) {
	e := store.Event{RequestID: r.ID, Type: store.EventMDECall, Actor: systemActor, MachineID: r.MachineID, Operation: string(r.Command), Reason: reason}
	if apiErr != nil {
		e.StatusCode, e.CorrelationID = apiErr.Status, apiErr.Target
	}
	s.audit(ctx, e)
}

// findMarked looks in the machine's actions for the newest one this
// request created (see createdBy).
func (s *Service) findMarked(ctx context.Context, r store.Request) (defender.MachineAction, bool, error) {
	acts, err := s.readActions(ctx, r.MachineID)
	if err != nil {
		return defender.MachineAction{}, false, err
	}
	slices.SortStableFunc(acts, func(a, b defender.MachineAction) int { return b.CreationDateTimeUTC.Compare(a.CreationDateTimeUTC) })
	for _, a := range acts {
		if createdBy(a, r) {
			return a, true, nil
		}
	}
	return defender.MachineAction{}, false, nil
}

func (s *Service) readActions(ctx context.Context, machineID string) ([]defender.MachineAction, error) {
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	acts, err := s.d.Defender.MachineActions(callCtx, machineID)
	if errors.Is(err, defender.ErrNotFound) {
		return nil, nil
	}
	return acts, err
}
