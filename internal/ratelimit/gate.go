package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Backend is the shared limiter as the Gate uses it. *Limiter (Redis) and
// *Memory implement it; ops.InstrumentLimiter wraps one for metrics.
type Backend interface {
	// Reserve asks for a slot in budget. maxWait 0: refuse unless a call may
	// go now. maxWait > 0: hand out the next free slot (FIFO) if it is at
	// most maxWait away. A refusal is Decision{Allowed:false, At: exact
	// earliest admission}, not an error; errors mean the store failed and
	// the caller must not call MDE.
	Reserve(ctx context.Context, budget string, maxWait time.Duration) (Decision, error)
	// Release gives back an admitted slot whose call was never sent.
	Release(ctx context.Context, budget string, d Decision) error
	// Block makes every replica hold off budget until the given time (MDE 429 Retry-After).
	Block(ctx context.Context, budget string, until time.Time) error
	// Limits are the counts and windows the Backend enforces.
	Limits() Limits
}

// RateLimitError: the next free slot of Budget is At, later than the
// caller may wait. Nothing was sent to MDE.
type RateLimitError struct {
	Budget string
	At     time.Time
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("MDE rate limit for %s: the next free slot is at %s, later than allowed to wait", e.Budget, e.At.UTC().Format("15:04:05 UTC"))
}

// errReleased: Wait on a ticket whose slot was given back.
var errReleased = errors.New("rate limiter: the reserved slot was released; the call must not be sent")

// releaseTimeout bounds giving back a slot; the caller's ctx is usually
// already done by then.
const releaseTimeout = 5 * time.Second

// Gate admits every MDE HTTP attempt through the shared Backend, so all
// replicas together stay within MDE's per-API limits. It implements
// defender.Gate (Admit, Throttled).
type Gate struct {
	b       Backend
	maxWait time.Duration
	now     func() time.Time
	log     zerolog.Logger // for failures Throttled and Release cannot return
}

// NewGate returns a Gate over b. A call may be queued at most maxWait ahead
// (0: only calls that may go now), never beyond its ctx deadline. now nil
// means time.Now; it must be the clock b expresses Decision.At on.
func NewGate(b Backend, maxWait time.Duration, now func() time.Time, log zerolog.Logger) *Gate {
	if now == nil {
		now = time.Now
	}
	return &Gate{b: b, maxWait: maxWait, now: now, log: log}
}

// Reserve decides at once and never waits: a *Ticket whose At is now or a
// reserved future slot, or *RateLimitError (the next slot lies beyond
// maxWait or the ctx deadline), or an error wrapping ErrUnavailable (the
// store is down: send nothing). The holder must Wait on the ticket before
// sending, or Release it.
func (g *Gate) Reserve(ctx context.Context, budget string) (*Ticket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	maxWait := g.maxWait
	if dl, ok := ctx.Deadline(); ok {
		// A slot the caller cannot live to use would be wasted. Deadlines
		// are on the real clock, whatever g.now is.
		maxWait = min(maxWait, max(time.Until(dl), 0))
	}
	d, err := g.b.Reserve(ctx, budget, maxWait)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: reserve %s: %w", ErrUnavailable, budget, err)
	}
	if !d.Allowed {
		return nil, &RateLimitError{Budget: budget, At: d.At}
	}
	return &Ticket{Budget: budget, At: d.At, g: g, d: d}, nil
}

// Admit = Reserve + Wait, for calls nobody is told about (reads). Errors
// mean nothing may be sent.
func (g *Gate) Admit(ctx context.Context, budget string) error {
	t, err := g.Reserve(ctx, budget)
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}

// Throttled shares MDE's 429 Retry-After with every replica: nobody sends
// to budget before retryAfter has passed.
//
// A 429 without Retry-After (retryAfter <= 0) blocks budget for one whole
// minute window from now. MDE counts calls per minute and does not say
// where its window starts, so "the rest of its minute" ends at the latest
// one window after the refusal: now + window is the conservative reading,
// and it is what every replica sees (the block is shared through b).
func (g *Gate) Throttled(ctx context.Context, budget string, retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = g.b.Limits().Minute
	}
	if err := g.b.Block(context.WithoutCancel(ctx), budget, g.now().Add(retryAfter)); err != nil {
		g.logger(ctx).Error().Err(err).Str("budget", budget).Msg("could not share MDE's Retry-After with other replicas")
	}
}

// logger is the request logger carried by ctx, else the Gate's.
func (g *Gate) logger(ctx context.Context) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &g.log
}

// Ticket is one admitted slot of Budget: the call may be sent at At.
type Ticket struct {
	Budget string
	At     time.Time

	g     *Gate
	d     Decision
	mu    sync.Mutex
	state ticketState
}

type ticketState int

const (
	ticketOpen     ticketState = iota
	ticketUsed                 // Wait returned nil: the call is taken to be sent
	ticketReleased             // the slot went back to the budget
)

// Wait returns at t.At (at once if it has passed). If ctx ends first it
// releases the slot and returns ctx's error. Idempotent: a second Wait after
// success returns nil at once; Wait after Release returns an error.
func (t *Ticket) Wait(ctx context.Context) error {
	t.mu.Lock()
	st := t.state
	t.mu.Unlock()
	switch st {
	case ticketUsed:
		return nil
	case ticketReleased:
		return errReleased
	}
	if wait := t.At.Sub(t.g.now()); wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			t.Release()
			return ctx.Err()
		}
	} else if err := ctx.Err(); err != nil {
		t.Release()
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == ticketReleased {
		return errReleased
	}
	t.state = ticketUsed
	return nil
}

// Release gives back a slot whose call will never be sent, so the next
// caller may take it. It does nothing after a successful Wait (the call is
// taken to have gone) or a previous Release; store failures are logged.
func (t *Ticket) Release() {
	t.mu.Lock()
	if t.state != ticketOpen {
		t.mu.Unlock()
		return
	}
	t.state = ticketReleased
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := t.g.b.Release(ctx, t.Budget, t.d); err != nil {
		t.g.log.Warn().Err(err).Str("budget", t.Budget).Msg("could not release an unused MDE rate-limit slot")
	}
}
