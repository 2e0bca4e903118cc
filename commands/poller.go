package commands

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Follows is the followed set and the poller's lease, in the store shared
// by every replica. store.Approvals and store.MemoryApprovals implement it.
type Follows interface {
	Follow(ctx context.Context, id string) error
	Unfollow(ctx context.Context, id string) error
	Followed(ctx context.Context) ([]string, error)
	// HoldLease takes or extends holder's lease name for ttl; false when
	// another holder's is running.
	HoldLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// pollerLeaseName is the deployment-wide lease of the one poller.
const pollerLeaseName = "poller"

// poller follows every followed request's MDE action for the whole
// deployment: each cycle (every PollInterval) the replica holding the
// poller lease reads the actions due for a read with one batched call
// (MachineActionsByID, chunked), so following costs a read per chunk per
// cycle, however many actions are followed. Every replica runs a poller
// loop while anything is followed; only the lease holder reads.
type poller struct {
	s      *Service
	holder string // this process, in the lease

	cycleMu sync.Mutex // one cycle at a time in this process
	next    map[string]time.Time
	created map[string]time.Time // the action's creation, once read

	mu      sync.Mutex
	running bool // the loop runs
}

func newPoller(s *Service) *poller {
	return &poller{s: s, holder: rand.Text(), next: map[string]time.Time{}, created: map[string]time.Time{}}
}

// ensure starts the poller loop unless it runs. The scheduler calls it on
// every tick while anything is followed, so a replica that starts (or
// takes over a dead holder's lease) finds the deployment's followed
// requests.
func (p *poller) ensure() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running || p.s.stopping() {
		return
	}
	p.running = true
	p.s.goBackground(p.loop)
}

// loop runs a cycle at once and then every PollInterval while this
// replica holds the poller lease and something is followed; otherwise it
// ends (the scheduler's tick starts it again while the followed set is not
// empty, which is how another replica takes the following over).
func (p *poller) loop(ctx context.Context) {
	defer func() {
		rctx, cancel := afterWork(ctx)
		defer cancel()
		if err := p.s.follows.ReleaseLease(rctx, pollerLeaseName, p.holder); err != nil {
			p.s.log.Warn().Err(err).Msg("could not release the poller lease; it runs out by itself")
		}
	}()
	t := time.NewTicker(p.s.cfg.PollInterval)
	defer t.Stop()
	for {
		if n, err := p.cycle(ctx); err != nil || n == 0 {
			p.stop()
			return
		}
		select {
		case <-p.s.stopped.Done():
			p.stop()
			return
		case <-t.C:
		}
	}
}

func (p *poller) stop() {
	p.mu.Lock()
	p.running = false
	p.mu.Unlock()
}

// cycle is one pass: hold the lease, read every followed request due for
// a read with one batched MDE call, and handle what changed. It returns
// how many requests are followed, 0 when the lease is another replica's.
func (p *poller) cycle(ctx context.Context) (int, error) {
	p.cycleMu.Lock()
	defer p.cycleMu.Unlock()
	s := p.s
	held, err := s.follows.HoldLease(ctx, pollerLeaseName, p.holder, s.leases.pollerLease())
	if err != nil || !held {
		return 0, err
	}
	ids, err := s.follows.Followed(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now()
	var due []store.Request
	for _, id := range ids {
		r, ok := p.followed(ctx, id)
		if ok && !p.nextRead(r, now).After(now) {
			due = append(due, r)
		}
	}
	if len(due) > 0 {
		p.read(ctx, due, now)
	}
	return len(ids), nil
}

// followed reads request id of the followed set; false when it is not to
// be read now (and it leaves the set when it ended or is gone).
func (p *poller) followed(ctx context.Context, id string) (store.Request, bool) {
	s := p.s
	r, err := s.d.Approvals.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.unfollow(ctx, id)
		return r, false
	case err != nil:
		return r, false
	case r.State.Terminal():
		s.unfollow(ctx, id)
		delete(p.next, id)
		delete(p.created, id)
		return r, false
	}
	// Executing without an action id yet: the sender still owns it.
	return r, r.State == store.Executing && r.MachineActionID != ""
}

// nextRead is when r's action is due for a read: a read interval after the
// last read, or after the last recorded change when this process has not
// read it yet (a new follower, or a replica that took the lease over).
func (p *poller) nextRead(r store.Request, now time.Time) time.Time {
	if t, ok := p.next[r.ID]; ok {
		return t
	}
	return r.UpdatedAt.Add(p.s.readEvery(now.Sub(p.createdAt(r))))
}

func (p *poller) createdAt(r store.Request) time.Time {
	if t, ok := p.created[r.ID]; ok {
		return t
	}
	return r.UpdatedAt
}

// read reads the due requests' actions in one batched call and handles
// each; a failed read is tried again at the next interval.
func (p *poller) read(ctx context.Context, due []store.Request, now time.Time) {
	s := p.s
	ids := make([]string, 0, len(due))
	for _, r := range due {
		ids = append(ids, r.MachineActionID)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	acts, err := s.d.Defender.MachineActionsByID(callCtx, ids)
	cancel()
	byID := make(map[string]defender.MachineAction, len(acts))
	for _, a := range acts {
		byID[a.ID] = a
	}
	if err != nil {
		s.log.Warn().Err(err).Int("actions", len(ids)).Msg("could not read the followed MDE actions; reading them again next interval")
	}
	for _, r := range due {
		a, ok := byID[r.MachineActionID]
		if ok {
			p.created[r.ID] = a.CreationDateTimeUTC
			s.observe(s.log.With().Str("request_id", r.ID).Str("action_id", a.ID).Logger().WithContext(ctx), r, a)
		} else if err == nil {
			s.log.Warn().Str("request_id", r.ID).Str("action_id", r.MachineActionID).Msg("MDE did not list the followed action; reading it again next interval")
		}
		// The schedule keeps its phase, so reads stay one interval apart
		// whatever a cycle's own delay.
		prev := p.nextRead(r, now)
		next := prev.Add(s.readEvery(now.Sub(p.createdAt(r))))
		if !next.After(now) {
			next = now.Add(s.readEvery(now.Sub(p.createdAt(r))))
		}
		p.next[r.ID] = next
	}
}

// readEvery is how often an action of age is read: every PollInterval
// during its first PollFastFor, then twice as long for each further
// PollFastFor, up to PollMaxInterval.
func (s *Service) readEvery(age time.Duration) time.Duration {
	every := s.cfg.PollInterval
	if age < s.cfg.PollFastFor {
		return every
	}
	for n := age / s.cfg.PollFastFor; n > 0 && every < s.cfg.PollMaxInterval; n-- {
		every *= 2
	}
	return min(every, s.cfg.PollMaxInterval)
}

// followUntil is when the following of r's action a ends: FollowFor after
// MDE created it (MDE retries an offline device for 3 days).
func (s *Service) followUntil(r store.Request, a defender.MachineAction) time.Time {
	from := a.CreationDateTimeUTC
	if from.IsZero() {
		from = r.UpdatedAt
	}
	return from.Add(s.cfg.FollowFor)
}
