package commands

import (
	"context"
	"time"
)

// The refusal throttle. Anyone in the workspace can type /isolate, and
// each refusal is an ephemeral reply and an audit entry: repeated refusals
// to one user are answered one by one up to Config.RefusalBurst within
// Config.RefusalWindow, then once with "slow down", then not at all until the
// window ends (the transport still acknowledges every delivery). The count
// lives in the shared store, so all replicas throttle together.

// Throttle counts hits per key in a fixed window shared by all replicas.
// store.Approvals (Redis) and store.MemoryApprovals implement it.
type Throttle interface {
	// Hit counts one hit on key and returns the hits in the window that
	// began with the first of them.
	Hit(ctx context.Context, key string, window time.Duration) (int64, error)
	// Hits returns the hits on key in its current window (0 when none).
	Hits(ctx context.Context, key string) (int64, error)
}

// refusalVerdict says how a refusal is delivered.
type refusalVerdict int

const (
	refusalTell     refusalVerdict = iota // tell the user and audit, as usual
	refusalSlowDown                       // the one "slow down" reply of the window, audited
	refusalSilent                         // neither told nor audited
)

func refusalKey(user string) string { return "refused:" + user }

// countRefusal counts one refusal to user. Without a Throttle, or when the
// store cannot count, the refusal is delivered as usual: it is already a
// "no", so failing open here grants nothing.
func (s *Service) countRefusal(ctx context.Context, user string) refusalVerdict {
	if s.d.Throttle == nil {
		return refusalTell
	}
	n, err := s.d.Throttle.Hit(ctx, refusalKey(user), s.cfg.RefusalWindow)
	switch {
	case err != nil:
		s.logger(ctx).Warn().Err(err).Msg("could not count the refusal; refusing without the throttle")
		return refusalTell
	case n <= int64(s.cfg.RefusalBurst):
		return refusalTell
	case n == int64(s.cfg.RefusalBurst)+1:
		return refusalSlowDown
	}
	return refusalSilent
}

// silenced reports whether user's commands are ignored for now: the "slow
// down" reply of this window was sent. A store failure silences nothing.
func (s *Service) silenced(ctx context.Context, user string) bool {
	if s.d.Throttle == nil {
		return false
	}
	n, err := s.d.Throttle.Hits(ctx, refusalKey(user))
	return err == nil && n > int64(s.cfg.RefusalBurst)
}

// throttledPrefix starts the audit reason of the "slow down" refusal.
const throttledPrefix = "throttled: "

func (s *Service) slowDownMessage() Message {
	return msg(txtf("Slow down: more than %d of your commands were refused within %s, so I ignore your commands for up to %s. Type ",
		s.cfg.RefusalBurst, s.cfg.RefusalWindow, s.cfg.RefusalWindow), code("/isolate help"), txt(" afterwards for the usage."))
}
