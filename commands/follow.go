package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// The follow stage: once MDE has the request's action, its status changes
// go to the thread until it is final (or PollFor has passed). The request
// stays executing, leased to the follower (see lease.go), so another
// replica resumes the following if this one stops.

// done records the MDE action, tells the thread and follows the action
// until it is final. status is the HTTP status of our own POST, 0 when
// found by reconciling.
func (s *Service) done(ctx context.Context, r store.Request, a defender.MachineAction, status int) {
	log := s.logger(ctx).With().Str("action_id", a.ID).Logger()
	ctx = log.WithContext(ctx)
	if status != 0 {
		s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventMDECall, Actor: systemActor, MachineID: r.MachineID, Operation: string(r.Command), StatusCode: status, ActionID: a.ID})
	}
	nr, err := s.leases.following(ctx, r, a.ID)
	if cur, ok := lost(err); ok {
		log.Warn().Str("state", string(cur.State)).Msg("another replica took this request over; it follows the action")
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

// resumeFollow carries on following the action of a request taken over
// from a replica that stopped after MDE accepted it.
func (s *Service) resumeFollow(ctx context.Context, r store.Request) {
	s.logger(ctx).Warn().Str("action_id", r.MachineActionID).Msg("took over the following of an MDE action")
	a, err := s.d.Defender.MachineAction(ctx, r.MachineActionID)
	if err != nil {
		s.logger(ctx).Warn().Err(err).Msg("could not read the MDE action to follow; a scheduler retries")
		if herr := s.leases.handBack(ctx, r, ""); herr != nil {
			s.logger(ctx).Warn().Err(herr).Msg("could not schedule the retry; the lease expiry will")
		}
		return
	}
	s.reply(ctx, r, msg(txt("Following MDE action "), code(a.ID), txtf(" again after a restart; it is %s.", a.Status)))
	s.follow(ctx, r, a)
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
		case <-s.stopped.Done():
			s.stopFollowing(ctx, r, last, true)
			return
		case <-pollCtx.Done():
			s.stopFollowing(ctx, r, last, ctx.Err() != nil)
			return
		case <-t.C:
		}
		nr, err := s.leases.renew(pollCtx, r, s.leases.followLease())
		if cur, ok := lost(err); ok {
			log.Info().Str("state", string(cur.State)).Msg("another replica follows this action now")
			return
		}
		if err == nil {
			r = nr
		}
		cur, changed := s.poll(pollCtx, last)
		if !changed {
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

// poll reads the action once; changed when its status moved from last's.
func (s *Service) poll(ctx context.Context, last defender.MachineAction) (defender.MachineAction, bool) {
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	cur, err := s.d.Defender.MachineAction(callCtx, last.ID)
	if err != nil {
		s.logger(ctx).Warn().Err(err).Msg("could not read action status; will poll again")
		return last, false
	}
	return cur, cur.Status != last.Status
}

// stopFollowing ends the following of an action that is not final yet:
// on shutdown the lease runs out and another replica (or this one after a
// restart) carries on; after PollFor the request ends.
func (s *Service) stopFollowing(ctx context.Context, r store.Request, last defender.MachineAction, shutdown bool) {
	tctx, stop := afterWork(ctx)
	defer stop()
	if shutdown {
		s.reply(tctx, r, msg(txtf("The bot is shutting down while following action %s (%s); another replica, or this one after its restart, will carry on.", last.ID, last.Status)))
		return
	}
	s.reply(tctx, r, msg(txtf("Stopped following action %s after %s; it is still %s. Check ", last.ID, s.cfg.PollFor, last.Status), code(UsageStatus), txt(" or the MDE portal.")))
	s.finish(tctx, r, last, fmt.Sprintf("MDE action %s still %s after %s", last.ID, last.Status, s.cfg.PollFor))
}

// finish ends r, which we own, once its MDE action is final (or no longer
// followed).
func (s *Service) finish(ctx context.Context, r store.Request, a defender.MachineAction, note string) {
	to, typ := store.Done, store.EventDone
	switch a.Status {
	case defender.StatusFailed, defender.StatusTimeOut, defender.StatusCancelled:
		to, typ = store.Failed, store.EventFailed
	}
	if _, err := s.leases.end(ctx, r, to, a.ID, note); err != nil {
		s.logger(ctx).Warn().Err(err).Msg("could not record the end of the request; a scheduler will look again")
		return
	}
	s.audit(ctx, store.Event{RequestID: r.ID, Type: typ, Actor: systemActor, MachineID: r.MachineID, ActionID: a.ID, Reason: note})
}
