package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// The send stage: an approved request's one Isolate/Unisolate call to MDE,
// within the rate limit, with 429s, unknown outcomes and takeovers by
// other replicas reconciled so that MDE gets the call once (classify says
// what each error means). Once MDE accepts it, the follow stage takes over.

// MaxMDECommentRunes bounds the comment sent to MDE. MDE documents no limit;
// this conservative bound keeps the provenance suffix and the marker intact
// by truncating the analyst's part.
const MaxMDECommentRunes = 1000

// noteStoreDown marks a request whose thread was told once that the state
// store is down, so retries do not repeat it.
const noteStoreDown = "state store unavailable, will retry"

// Marker is the exact tag put in the MDE comment of request id, found again
// by reconciliation ("[isolate-bot r-7]" never matches r-70).
func Marker(id string) string { return "[isolate-bot " + id + "]" }

// MDEComment is the comment sent to MDE for a request decided in Slack.
func MDEComment(r store.Request) string { return MDECommentVia(r, "Slack") }

// MDECommentVia is the comment sent to MDE: MDE records only the app as
// requestor, so the people, the transport they decided through (via:
// "Slack", "console") and the request go in the text.
func MDECommentVia(r store.Request, via string) string {
	suffix := fmt.Sprintf(" — requested by %s via %s, approved by %s, isolate-bot request %s", r.Requester, via, r.DecidedBy, Marker(r.ID))
	room := MaxMDECommentRunes - utf8.RuneCountInString(suffix)
	c := r.Comment
	if utf8.RuneCountInString(c) > room {
		c = string([]rune(c)[:max(room-1, 0)]) + "…"
	}
	return c + suffix
}

// startExecution runs r (approved, or executing and stranded) in the
// background unless this process already runs it.
func (s *Service) startExecution(r store.Request) {
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
	throttled, resent := 0, false
	for {
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
		a, err := s.post(ctx, &r)
		if err == nil {
			s.done(ctx, r, a, 201)
			return
		}
		if ctx.Err() != nil {
			// Shutdown: the request stays executing; a scheduler reconciles it.
			log.Warn().Err(err).Msg("stopped during the MDE call")
			return
		}
		o := classify(err, sendTry{throttled: throttled, queueMaxWait: s.cfg.QueueMaxWait})
		apiErr := asAPIError(err)
		if o.call != "" {
			s.auditCall(ctx, r, apiErr, o.call)
		}
		switch o.verdict {
		case notOurs:
			log.Warn().Msg("request taken over by another replica while queued; not sending")
			return
		case handBack:
			s.retryLater(ctx, r, noteStoreDown)
			return
		case sendLater:
			throttled++
			if r, err = s.waitToResend(ctx, r, o.after); err != nil {
				return
			}
		case reconcileFirst:
			if !s.reconcile(ctx, r, apiErr, resent) {
				return
			}
			resent = true
		case actionUnderWay:
			s.failUnderWay(ctx, r, apiErr)
			return
		case fail:
			log.Error().Err(err).Msg("MDE call failed")
			s.fail(ctx, r, o.why, apiErr, nil)
			return
		}
	}
}

// waitToResend holds r through a 429's wait, tells the thread, and sleeps.
// An error means stop: the wait was cut short by shutdown.
func (s *Service) waitToResend(ctx context.Context, r store.Request, wait time.Duration) (store.Request, error) {
	at := s.now().Add(wait)
	if nr, err := s.leases.holdUntil(ctx, r, at); err == nil {
		r = nr
	}
	s.reply(ctx, r, msg(txtf("MDE throttled us (HTTP 429); retrying at %s.", hhmmss(at))))
	if !sleepCtx(ctx, wait) {
		return r, ctx.Err()
	}
	return r, nil
}

// reconcile looks for the action a call with an unknown outcome may have
// created. It reports whether to send once more; otherwise the request
// was finished, failed or handed back here.
func (s *Service) reconcile(ctx context.Context, r store.Request, apiErr *defender.APIError, resent bool) bool {
	a, found, err := s.findMarked(ctx, r)
	switch {
	case err != nil:
		s.retryLater(ctx, r, retryNote("MDE did not confirm the call and its actions could not be read", err))
		return false
	case found:
		s.done(ctx, r, a, 0)
		return false
	case resent:
		s.fail(ctx, r, "MDE did not confirm the call twice; check the MDE portal (Action center) for this machine before requesting again.", apiErr, nil)
		return false
	}
	s.reply(ctx, r, msg(txt("MDE did not confirm the call and has no record of it; sending it once more.")))
	return true
}

// failUnderWay fails r because MDE already has an action under way for
// the machine, naming that action when MDE lists it.
func (s *Service) failUnderWay(ctx context.Context, r store.Request, apiErr *defender.APIError) {
	var pending *defender.MachineAction
	if acts, err := s.readActions(ctx, r.MachineID); err == nil {
		if st := deriveState(acts, s.now()); st.Last != nil && !st.Last.Final() {
			pending = st.Last
		}
	}
	why := "MDE already has an action in progress for this machine, so nothing new was sent; follow that action, then request again if needed."
	if pending != nil {
		why = fmt.Sprintf("MDE already has an action in progress for this machine (%s %s, %s), so nothing new was sent; follow that action, then request again if needed.", pending.Type, pending.ID, pending.Status)
	}
	s.fail(ctx, r, why, apiErr, pending)
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

// findMarked looks in the machine's actions for the one this request created:
// same type, our exact marker, created after the approval (less a minute of
// clock skew, so a reused id of a wiped store cannot match an old action).
func (s *Service) findMarked(ctx context.Context, r store.Request) (defender.MachineAction, bool, error) {
	acts, err := s.readActions(ctx, r.MachineID)
	if err != nil {
		return defender.MachineAction{}, false, err
	}
	typ := "Isolate"
	if r.Command == store.Unisolate {
		typ = "Unisolate"
	}
	after := r.DecidedAt.Add(-time.Minute)
	slices.SortStableFunc(acts, func(a, b defender.MachineAction) int { return b.CreationDateTimeUTC.Compare(a.CreationDateTimeUTC) })
	for _, a := range acts {
		if strings.EqualFold(a.Type, typ) && strings.Contains(a.RequestorComment, Marker(r.ID)) && !a.CreationDateTimeUTC.Before(after) {
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

// sleepCtx waits d or until ctx ends; false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
