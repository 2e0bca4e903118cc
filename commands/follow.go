package commands

import (
	"context"
	"fmt"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// The follow stage: once MDE has the request's action, the request joins
// the deployment's followed set and the one poller (poller.go) reads its
// status with every other followed action's, until it is final or
// FollowFor has passed. Each status change is recorded on the request
// (its Note, by compare-and-set, so it is announced exactly once), shown
// on the card and told in one thread reply. The request stays executing,
// owned by the poller's lease (see lease.go).

// followNote is a followed request's Note: the action and the status last
// announced. A read whose note differs is a change to announce.
func followNote(a defender.MachineAction) string {
	return "MDE action " + a.ID + " " + a.Status
}

// done records the MDE action, tells the thread and hands the request to
// the poller. status is the HTTP status of our own POST, 0 when found by
// reconciling.
func (s *Service) done(ctx context.Context, r store.Request, a defender.MachineAction, status int) {
	log := s.logger(ctx).With().Str("action_id", a.ID).Logger()
	ctx = log.WithContext(ctx)
	if status != 0 {
		s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventMDECall, Actor: systemActor, MachineID: r.MachineID, Operation: string(r.Command), StatusCode: status, ActionID: a.ID})
	}
	// Into the followed set first: a request owned by the poller's lease
	// must be in it, or nobody would follow it until its CheckAt.
	enrolled := true
	if err := s.follows.Follow(ctx, r.ID); err != nil {
		log.Warn().Err(err).Msg("could not add the request to the followed set; a scheduler enrols it soon")
		enrolled = false
	}
	nr, err := s.leases.following(ctx, r, a, enrolled)
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
	s.showAction(ctx, r, a)
	s.reply(ctx, r, intro)
	log.Info().Msg("MDE action created")
	if a.Final() && err == nil {
		s.finish(ctx, r, a)
		return
	}
	s.poller.ensure()
}

// resumeFollow enrols a request taken over by a scheduler with its action
// id recorded (its enrolment failed, or it was followed by an older
// version): the poller reads and announces its status from here on.
func (s *Service) resumeFollow(ctx context.Context, r store.Request) {
	log := s.logger(ctx).With().Str("action_id", r.MachineActionID).Logger()
	if err := s.follows.Follow(ctx, r.ID); err != nil {
		log.Warn().Err(err).Msg("could not enrol the request for following; a scheduler retries")
		if herr := s.leases.handBack(ctx, r, r.Note); herr != nil {
			log.Warn().Err(herr).Msg("could not schedule the retry; the lease expiry will")
		}
		return
	}
	if _, err := s.leases.enrol(ctx, r); err != nil {
		log.Warn().Err(err).Msg("could not hand the request to the poller's lease; it follows it anyway")
	}
	log.Info().Msg("following the MDE action again")
	s.poller.ensure()
}

// observe handles one fresh read a of r's action: a change of status is
// recorded (exactly one replica wins), shown on the card and told in the
// thread; a final status ends the request; past followUntil the
// following stops.
func (s *Service) observe(ctx context.Context, r store.Request, a defender.MachineAction) {
	switch {
	case a.Final():
		s.finish(ctx, r, a)
	case followNote(a) != r.Note:
		nr, err := s.leases.reported(ctx, r, a)
		if err != nil {
			s.logger(ctx).Info().Err(err).Str("request_id", r.ID).Msg("status change not recorded; the next cycle tries again")
			return
		}
		s.showAction(ctx, nr, a)
		out := msg(txt("MDE action "), code(a.ID), txt(" is now "), bold(a.Status), txt("."))
		out.Action = &a
		s.reply(ctx, nr, out)
		s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventStatus, Actor: systemActor, MachineID: r.MachineID, ActionID: a.ID, Reason: a.Status})
	case s.followUntil(r, a).Before(s.now()):
		s.stopFollowing(ctx, r, a)
	}
}

// stopFollowing ends r once FollowFor has passed and its action is still
// not final: the card and the thread say so and why.
func (s *Service) stopFollowing(ctx context.Context, r store.Request, a defender.MachineAction) {
	why := fmt.Sprintf("stopped following after %s: MDE action %s is still %s", s.cfg.FollowFor, a.ID, a.Status)
	f, err := s.leases.end(ctx, r, store.Failed, a.ID, why)
	if err != nil {
		s.logger(ctx).Info().Err(err).Str("request_id", r.ID).Msg("could not end the following; the next cycle tries again")
		return
	}
	s.unfollow(ctx, r.ID)
	s.showAction(ctx, f, a)
	out := msg(txtf("Stopped following MDE action %s after %s; it is still %s. Check ", a.ID, s.cfg.FollowFor, a.Status), code(UsageStatus), txt(" or the MDE portal."))
	out.Action = &a
	s.reply(ctx, f, out)
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventFailed, Actor: systemActor, MachineID: r.MachineID, ActionID: a.ID, Reason: why})
}

// finish ends r, which the poller (or the sender) owns, once its MDE
// action is final: the card shows the outcome and the thread hears it once.
func (s *Service) finish(ctx context.Context, r store.Request, a defender.MachineAction) {
	to, typ := store.Done, store.EventDone
	if a.Status != defender.StatusSucceeded {
		to, typ = store.Failed, store.EventFailed
	}
	f, err := s.leases.end(ctx, r, to, a.ID, followNote(a))
	if cur, ok := lost(err); ok && cur.State.Terminal() {
		s.unfollow(ctx, r.ID) // another replica finished it
		return
	}
	if err != nil {
		s.logger(ctx).Info().Err(err).Str("request_id", r.ID).Msg("could not record the end of the request; the next cycle tries again")
		return
	}
	s.unfollow(ctx, r.ID)
	s.showAction(ctx, f, a)
	out := msg(Outcome(f, &a)...)
	out.Spans = append(out.Spans, txt(" (MDE action "), code(a.ID), txt(")."))
	out.Action = &a
	s.reply(ctx, f, out)
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventStatus, Actor: systemActor, MachineID: r.MachineID, ActionID: a.ID, Reason: a.Status})
	s.audit(ctx, store.Event{RequestID: r.ID, Type: typ, Actor: systemActor, MachineID: r.MachineID, ActionID: a.ID, Reason: followNote(a)})
	s.logger(ctx).Info().Str("request_id", r.ID).Str("status", a.Status).Msg("MDE action finished")
}

func (s *Service) unfollow(ctx context.Context, id string) {
	if err := s.follows.Unfollow(ctx, id); err != nil {
		s.logger(ctx).Warn().Err(err).Str("request_id", id).Msg("could not leave the followed set; the poller drops it once it sees the request ended")
	}
}

// showAction re-renders r's card with its action as just read.
func (s *Service) showAction(ctx context.Context, r store.Request, a defender.MachineAction) {
	if r.MessageTS == "" || r.Channel == "" {
		return
	}
	if err := s.d.Messenger.UpdateCard(ctx, r.Channel, r.MessageTS, s.card(r, defender.Machine{}, &a)); err != nil {
		s.logger(ctx).Error().Err(err).Str("request_id", r.ID).Msg("could not update the request card")
	}
}
