package commands

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Deps are the parts a Service drives. Defender should have the same
// ratelimit.Gate set for its reads, so that every MDE call is rate limited.
type Deps struct {
	Defender  Defender
	Approvals Approvals
	Gate      Gate // reserves the slot of each Isolate/Unisolate; nil: the Defender admits writes itself (no queue notice)
	Messenger Messenger
	Directory Directory // may be nil when no S… group ids are configured
	Throttle  Throttle  // counts refusals per user (throttle.go); nil: no throttle
	// Follows is the followed set and the poller lease (poller.go), shared
	// by every replica. Nil: Approvals' own when it has them (both stores
	// do), else a process-local memory twin (one replica only).
	Follows Follows
	// Transport names where people decide ("Slack", "console"): it marks
	// decisions in the audit trail and the MDE comment. Default "Slack".
	Transport string
	Logger    zerolog.Logger
	Now       func() time.Time // nil: time.Now
	Version   string
}

// Invocation is one slash command as the transport received it.
type Invocation struct {
	Command    string // "/isolate" or "/unisolate"
	Text       string // everything after the command
	User       string // Slack user id of the caller
	Channel    string // channel id where it was typed
	TriggerID  string
	DeliveryID string // transport delivery id (e.g. Socket Mode envelope id), for the logs; not a request id like r-7
}

// Click is one press of Approve or Deny on a request card.
type Click struct {
	RequestID string // "r-<n>", from the button value
	User      string // who clicked
	Channel   string // channel of the card
	MessageTS string // ts of the card
	Action    Button // the button pressed
	TriggerID string
}

// Service is the transport-neutral core of isolate-bot. It is safe for
// concurrent use; several Services (replicas) may share one store and never
// send the same request to MDE twice.
type Service struct {
	cfg     Config
	d       Deps
	now     func() time.Time
	log     zerolog.Logger
	leases  *leases // who owns which request, for how long: see lease.go
	follows Follows
	poller  *poller // follows every followed MDE action: see poller.go
	// drainer starts outbreak batches (set by NewDrainer with Plans,
	// before the Service runs); nil: bulk commands are refused.
	drainer *Drainer

	// bg carries background work (executions, status followers): detached
	// from the triggering command's ctx and cancelled only by Abort, so an
	// MDE call in flight at shutdown finishes and is recorded. Its waits
	// also end when stopped is done (Stop): see stop.go.
	bg      context.Context
	abortBg context.CancelFunc
	stopped context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.Mutex
	groups map[string]groupHit // user-group membership cache
}

// New returns a Service. It panics when cfg lacks a duration (see Config).
func New(cfg Config, deps Deps) *Service {
	cfg.check()
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Transport == "" {
		deps.Transport = "Slack"
	}
	if deps.Follows == nil {
		deps.Follows = followsOf(deps.Approvals)
	}
	bg, abort := context.WithCancel(context.Background())
	stopped, stop := context.WithCancel(context.Background())
	s := &Service{
		cfg:     cfg,
		d:       deps,
		now:     deps.Now,
		log:     deps.Logger,
		leases:  newLeases(cfg, deps.Approvals, deps.Now),
		follows: deps.Follows,
		bg:      bg,
		abortBg: abort,
		stopped: stopped,
		stop:    stop,
		groups:  map[string]groupHit{},
	}
	s.poller = newPoller(s)
	return s
}

// followsOf is a's own Follows, else a process-local one.
func followsOf(a Approvals) Follows {
	if f, ok := a.(Follows); ok {
		return f
	}
	return store.NewMemoryApprovals(store.ApprovalsConfig{Prefix: "local", Retention: time.Hour, AuditMaxLen: 1})
}

// Config returns the Service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Stop ends every wait of background work (the queue before a rate-limit
// slot, back-offs, reconciling, the sleeps between status reads); the
// request's lease then hands it to another replica. An MDE call in flight
// is not cut: it finishes within its own deadline (CallTimeout), and its
// outcome is recorded and posted. Call Wait afterwards, and Abort if that
// takes longer than the shutdown allows.
func (s *Service) Stop() { s.stop() }

// Abort stops and also cancels the MDE calls and store writes in flight.
// A request cut mid-call stays executing and a scheduler reconciles it
// with MDE before any other call.
func (s *Service) Abort() {
	s.stop()
	s.abortBg()
}

// Wait blocks until all background work has finished.
func (s *Service) Wait() { s.wg.Wait() }

// goBackground runs fn tracked by Wait, with the background ctx.
func (s *Service) goBackground(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.bg)
	}()
}

// logger returns the ctx logger if one is attached, else the Service's.
func (s *Service) logger(ctx context.Context) *zerolog.Logger { return logFor(ctx, &s.log) }

// logFor is the request logger carried by ctx (request id, user, machine),
// else fallback: zerolog.Ctx alone would silently drop the line.
func logFor(ctx context.Context, fallback *zerolog.Logger) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return fallback
}

// ephemeral tells user something privately; failures are only logged.
func (s *Service) ephemeral(ctx context.Context, channel, user string, m Message) {
	ctx, cancel := afterWork(ctx)
	defer cancel()
	if err := s.d.Messenger.Ephemeral(ctx, channel, user, m); err != nil {
		s.logger(ctx).Error().Err(err).Msg("could not send ephemeral message")
	}
}

// reply posts m in r's audit thread; failures are only logged.
func (s *Service) reply(ctx context.Context, r store.Request, m Message) {
	if r.MessageTS == "" || r.Channel == "" {
		s.logger(ctx).Warn().Str("request_id", r.ID).Msg("request has no card thread; reply dropped")
		return
	}
	if err := s.d.Messenger.Reply(ctx, r.Channel, r.MessageTS, m); err != nil {
		s.logger(ctx).Error().Err(err).Str("request_id", r.ID).Msg("could not reply in the request thread")
	}
}

// updateCard re-renders r's card; failures are only logged.
func (s *Service) updateCard(ctx context.Context, r store.Request) {
	if r.MessageTS == "" || r.Channel == "" {
		return
	}
	if err := s.d.Messenger.UpdateCard(ctx, r.Channel, r.MessageTS, s.card(r, defender.Machine{}, nil)); err != nil {
		s.logger(ctx).Error().Err(err).Str("request_id", r.ID).Msg("could not update the request card")
	}
}

// audit appends e; the audit log is best effort for refusals but its
// failure is always logged.
func (s *Service) audit(ctx context.Context, e store.Event) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	ctx, cancel := afterWork(ctx)
	defer cancel()
	if err := s.d.Approvals.Append(ctx, e); err != nil {
		s.logger(ctx).Error().Err(err).Str("event", e.Type).Str("request_id", e.RequestID).Msg("could not append audit event")
	}
}

// via marks a decision with the transport it was made through.
func (s *Service) via() string { return "via " + s.d.Transport }

// afterWorkTimeout bounds telling the user (and the audit log) why nothing
// happened once the work's own deadline has run out.
const afterWorkTimeout = 5 * time.Second

// afterWork returns ctx while it is live, else a detached context with a
// short deadline: when a slow MDE lookup used up the command's time, the
// refusal must still reach the user and the audit log.
func afterWork(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), afterWorkTimeout)
}
