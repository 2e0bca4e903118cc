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

// MaxMDECommentRunes bounds the comment sent to MDE. MDE documents no limit;
// this conservative bound keeps the provenance suffix and the marker intact
// by truncating the analyst's part.
const MaxMDECommentRunes = 1000

// maxThrottled bounds the attempts of one request against MDE 429s.
const maxThrottled = 5

// noteStoreDown marks a request whose thread was told once that the state
// store is down, so retries do not repeat it.
const noteStoreDown = "state store unavailable, will retry"

// Marker is the exact tag put in the MDE comment of request id, found again
// by reconciliation ("[isolate-bot r-7]" never matches r-70).
func Marker(id string) string { return "[isolate-bot " + id + "]" }

// MDEComment is the comment sent to MDE: MDE records only the app as
// requestor, so the people and the request go in the text.
func MDEComment(r store.Request) string {
	suffix := fmt.Sprintf(" — requested by %s via Slack, approved by %s, isolate-bot request %s", r.Requester, r.DecidedBy, Marker(r.ID))
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
	if !s.claimLocal(r.ID) {
		return
	}
	s.goBackground(func(ctx context.Context) {
		defer s.releaseLocal(r.ID)
		s.execute(ctx, r)
	})
}

// execute claims r (exactly one replica wins), reconciles a taken-over
// request with MDE, then sends it.
func (s *Service) execute(ctx context.Context, r store.Request) {
	log := s.log.With().Str("request_id", r.ID).Str("machine", r.MachineID).Logger()
	ctx = log.WithContext(ctx)
	var err error
	switch r.State {
	case store.Approved:
		r, err = s.d.Approvals.Transition(ctx, r.ID, store.Approved, store.Change{To: store.Executing, CheckAt: s.now().Add(s.lease())})
		if err != nil {
			log.Info().Err(err).Msg("not claimed; another replica runs it or the store is down (the scheduler retries)")
			return
		}
	case store.Executing:
		// A replica died mid-flight or while queued: take over exactly once.
		r, err = s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: s.now().Add(s.lease())})
		if err != nil {
			log.Info().Err(err).Msg("takeover lost or store down")
			return
		}
		if r.MachineActionID != "" {
			// MDE accepted it; the replica that was following it is gone.
			log.Warn().Str("action_id", r.MachineActionID).Msg("took over the following of an MDE action")
			a, err := s.d.Defender.MachineAction(ctx, r.MachineActionID)
			if err != nil {
				s.retryFollowLater(ctx, r, err)
				return
			}
			s.reply(ctx, r, msg(txt("Following MDE action "), code(a.ID), txtf(" again after a restart; it is %s.", a.Status)))
			s.follow(ctx, r, a)
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

// send calls MDE for r, handling queueing, 429s and unknown outcomes.
func (s *Service) send(ctx context.Context, r store.Request) {
	log := s.logger(ctx)
	throttled, resent := 0, false
	for {
		// Renew our lease before every attempt, so no replica takes over
		// while a call may be in flight.
		nr, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: s.now().Add(s.lease())})
		if err != nil {
			var ce *store.ConflictError
			if errors.As(err, &ce) {
				log.Warn().Msg("request taken over by another replica; not sending")
				return
			}
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
		var apiErr *defender.APIError
		errors.As(err, &apiErr)
		var rl *RateLimitError
		var ce *store.ConflictError
		switch {
		case errors.As(err, &ce):
			log.Warn().Msg("request taken over by another replica while queued; not sending")
			return
		case errors.As(err, &rl):
			s.fail(ctx, r, fmt.Sprintf("MDE's rate limit is booked until %s, beyond the %s this request may wait; nothing was sent to MDE. Request again after that time.",
				hhmmss(rl.At), s.cfg.QueueMaxWait), nil, nil)
			return
		case errors.Is(err, ErrLimiterUnavailable), errors.Is(err, store.ErrUnavailable):
			s.retryLater(ctx, r, noteStoreDown)
			return
		case errors.Is(err, defender.ErrThrottled):
			throttled++
			s.auditCall(ctx, r, apiErr, "", "throttled")
			if throttled >= maxThrottled {
				s.fail(ctx, r, fmt.Sprintf("MDE kept throttling us (HTTP 429) after %d attempts; nothing was isolated. Try again later.", throttled), apiErr, nil)
				return
			}
			wait := time.Duration(throttled) * 10 * time.Second // no Retry-After: back off
			if apiErr != nil && apiErr.RetryAfter > 0 {
				wait = apiErr.RetryAfter
			}
			at := s.now().Add(wait)
			if nr, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, RunAt: at, CheckAt: at.Add(s.lease())}); err == nil {
				r = nr
			}
			s.reply(ctx, r, msg(txtf("MDE throttled us (HTTP 429); retrying at %s.", hhmmss(at))))
			if !sleepCtx(ctx, wait) {
				return
			}
		case errors.Is(err, defender.ErrOutcomeUnknown):
			s.auditCall(ctx, r, apiErr, "", "outcome unknown")
			a, found, rerr := s.findMarked(ctx, r)
			if rerr != nil {
				s.retryLater(ctx, r, retryNote("MDE did not confirm the call and its actions could not be read", rerr))
				return
			}
			if found {
				s.done(ctx, r, a, 0)
				return
			}
			if resent {
				s.fail(ctx, r, "MDE did not confirm the call twice; check the MDE portal (Action center) for this machine before requesting again.", apiErr, nil)
				return
			}
			resent = true
			s.reply(ctx, r, msg(txt("MDE did not confirm the call and has no record of it; sending it once more.")))
		case errors.Is(err, defender.ErrAlreadyInProgress):
			s.auditCall(ctx, r, apiErr, "", "already in progress")
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
			return
		default:
			log.Error().Err(err).Msg("MDE call failed")
			s.auditCall(ctx, r, apiErr, "", "error")
			s.fail(ctx, r, describeMDEError(err), apiErr, nil)
			return
		}
	}
}

// done records the MDE action, tells the thread and follows the action
// until it is final: the request stays executing (leased to this replica)
// until then, so another replica takes the following over if this one
// stops. status is the HTTP status of our own POST, 0 when found by
// reconciling.
func (s *Service) done(ctx context.Context, r store.Request, a defender.MachineAction, status int) {
	log := s.logger(ctx).With().Str("action_id", a.ID).Logger()
	ctx = log.WithContext(ctx)
	if status != 0 {
		s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventMDECall, Actor: systemActor, MachineID: r.MachineID, Operation: string(r.Command), StatusCode: status, ActionID: a.ID})
	}
	nr, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version,
		MachineActionID: a.ID, CheckAt: s.now().Add(s.followLease()), Note: "MDE action " + a.ID})
	if ce := (*store.ConflictError)(nil); errors.As(err, &ce) {
		log.Warn().Str("state", string(ce.Current.State)).Msg("another replica took this request over; it follows the action")
		return
	}
	if err != nil {
		// A scheduler finds the action again by its marker later.
		log.Error().Err(err).Msg("MDE accepted the action but it could not be recorded")
	} else {
		r = nr
	}
	intro := msg(txtf("Sent to MDE: %s action ", a.Type), code(a.ID), txtf(" is %s.", a.Status))
	if status == 0 {
		intro = msg(txtf("Found the MDE %s action for this request: ", a.Type), code(a.ID), txtf(" is %s; nothing was sent again.", a.Status))
	}
	intro.Action = &a
	s.reply(ctx, r, intro)
	log.Info().Msg("MDE action created")
	s.follow(ctx, r, a)
}

// followLease is how long a follower's claim lasts between two polls.
func (s *Service) followLease() time.Duration { return s.cfg.PollInterval + s.lease() }

// finish ends r once its MDE action is final (or no longer followed).
func (s *Service) finish(ctx context.Context, r store.Request, a defender.MachineAction, note string) {
	to, typ := store.Done, store.EventDone
	switch a.Status {
	case defender.StatusFailed, defender.StatusTimeOut, defender.StatusCancelled:
		to, typ = store.Failed, store.EventFailed
	}
	_, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: to, IfVersion: r.Version, MachineActionID: a.ID, Note: note})
	if err != nil {
		s.logger(ctx).Warn().Err(err).Msg("could not record the end of the request; a scheduler will look again")
		return
	}
	s.audit(ctx, store.Event{RequestID: r.ID, Type: typ, Actor: systemActor, MachineID: r.MachineID, ActionID: a.ID, Reason: note})
}

// fail ends r as failed with a plain-words reason.
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
	f, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Failed, Note: why})
	if ce := (*store.ConflictError)(nil); errors.As(err, &ce) && ce.Current.State.Terminal() {
		s.logger(ctx).Warn().Str("state", string(ce.Current.State)).Str("reason", why).Msg("another replica already finished this request")
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

// retryLater leaves r executing with CheckAt soon, so a scheduler resumes it
// (reconciling first). The thread is told once per cause.
func (s *Service) retryLater(ctx context.Context, r store.Request, why string) {
	if ctx.Err() != nil {
		return // shutting down: the lease expiry hands it to a scheduler
	}
	s.logger(ctx).Warn().Str("reason", why).Msg("will retry")
	// If the store is down this fails too; CheckAt of the lease is soon anyway.
	if _, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: s.now().Add(2 * s.cfg.SchedulerEvery), Note: why}); err != nil {
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

// follow reports the action's status changes in the thread until it is
// final or PollFor has passed, renewing this replica's lease on the request
// at every poll, then ends the request.
func (s *Service) follow(ctx context.Context, r store.Request, a defender.MachineAction) {
	log := s.logger(ctx).With().Str("action_id", a.ID).Logger()
	ctx = log.WithContext(ctx)
	pollCtx, cancel := context.WithTimeout(ctx, s.cfg.PollFor)
	defer cancel()
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	last := a
	for !last.Final() {
		select {
		case <-pollCtx.Done():
			tctx, stop := afterWork(ctx)
			defer stop()
			if ctx.Err() != nil {
				// Shutdown: the lease runs out and another replica (or
				// this one after a restart) takes the following over.
				s.reply(tctx, r, msg(txtf("The bot is shutting down while following action %s (%s); another replica, or this one after its restart, will carry on.", a.ID, last.Status)))
				return
			}
			s.reply(tctx, r, msg(txtf("Stopped following action %s after %s; it is still %s. Check ", a.ID, s.cfg.PollFor, last.Status), code(UsageStatus), txt(" or the MDE portal.")))
			s.finish(tctx, r, last, fmt.Sprintf("MDE action %s still %s after %s", a.ID, last.Status, s.cfg.PollFor))
			return
		case <-t.C:
		}
		nr, err := s.d.Approvals.Transition(pollCtx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: s.now().Add(s.followLease())})
		var ce *store.ConflictError
		switch {
		case errors.As(err, &ce):
			log.Info().Str("state", string(ce.Current.State)).Msg("another replica follows this action now")
			return
		case err == nil:
			r = nr
		}
		callCtx, c := context.WithTimeout(pollCtx, s.cfg.CallTimeout)
		cur, err := s.d.Defender.MachineAction(callCtx, a.ID)
		c()
		if err != nil {
			log.Warn().Err(err).Msg("could not read action status; will poll again")
			continue
		}
		if cur.Status == last.Status {
			continue
		}
		last = cur
		out := msg(txt("MDE action "), code(cur.ID), txt(" is now "), bold(cur.Status), txt("."))
		out.Action = &cur
		s.reply(ctx, r, out)
		s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventStatus, Actor: systemActor, MachineID: r.MachineID, ActionID: cur.ID, Reason: cur.Status})
	}
	s.finish(ctx, r, last, "MDE action "+last.ID+" "+last.Status)
	log.Info().Str("status", last.Status).Msg("MDE action finished")
}

// retryFollowLater leaves r executing so a scheduler resumes the following.
func (s *Service) retryFollowLater(ctx context.Context, r store.Request, err error) {
	s.logger(ctx).Warn().Err(err).Msg("could not read the MDE action to follow; a scheduler retries")
	if _, terr := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, CheckAt: s.now().Add(2 * s.cfg.SchedulerEvery)}); terr != nil {
		s.logger(ctx).Warn().Err(terr).Msg("could not schedule the retry; the lease expiry will")
	}
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

func (s *Service) auditCall(ctx context.Context, r store.Request, apiErr *defender.APIError, actionID, reason string) {
	e := store.Event{RequestID: r.ID, Type: store.EventMDECall, Actor: systemActor, MachineID: r.MachineID, Operation: string(r.Command), ActionID: actionID, Reason: reason}
	if apiErr != nil {
		e.StatusCode, e.CorrelationID = apiErr.Status, apiErr.Target
	}
	s.audit(ctx, e)
}

// describeMDEError turns an MDE failure into words a SOC analyst can act
// on. APIError never carries secrets.
func describeMDEError(err error) string {
	var rl *RateLimitError
	var apiErr *defender.APIError
	errors.As(err, &apiErr)
	detail := ""
	if apiErr != nil {
		if apiErr.Status != 0 {
			detail = fmt.Sprintf(" (HTTP %d", apiErr.Status)
			if apiErr.Code != "" {
				detail += " " + apiErr.Code
			}
			detail += ")"
		}
		if apiErr.Message != "" {
			detail += ": " + apiErr.Message
		}
	}
	switch {
	case errors.As(err, &rl):
		return fmt.Sprintf("MDE's rate limit is full; the next free slot is at %s.", hhmmss(rl.At))
	case errors.Is(err, ErrLimiterUnavailable), errors.Is(err, store.ErrUnavailable):
		return "the state store (rate limiter) is unavailable, so nothing was sent to MDE."
	case errors.Is(err, defender.ErrForbidden):
		return "The Azure app lacks the Machine.Isolate application permission (admin consent needed)" + detail + "."
	case errors.Is(err, defender.ErrUnauthorized):
		return "MDE rejected the app's credentials (check the Azure app registration's tenant, client id and secret)" + detail + "."
	case errors.Is(err, defender.ErrNotFound):
		return "MDE does not know this machine (it may be outside MDE's retention)" + detail + "."
	case errors.Is(err, defender.ErrBadRequest):
		return "MDE rejected the request as invalid (e.g. an isolation type the device does not support)" + detail + "."
	case errors.Is(err, defender.ErrThrottled):
		return "MDE is throttling us (HTTP 429); try again in a few minutes."
	case errors.Is(err, defender.ErrUnavailable):
		return "MDE is unavailable right now" + detail + "; try again later."
	case errors.Is(err, defender.ErrOutcomeUnknown):
		return "MDE did not answer in time; check the MDE portal (Action center) before trying again."
	case errors.Is(err, context.DeadlineExceeded):
		return "MDE did not answer in time."
	}
	if apiErr != nil {
		return "MDE call failed: " + apiErr.Error() + "."
	}
	// Not from the MDE client's vocabulary: keep its text in the logs only.
	return "the MDE call failed unexpectedly (details in the bot's logs)."
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
