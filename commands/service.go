package commands

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/store"
)

// Config is the behaviour of a Service. Zero durations take the defaults
// documented on each field.
type Config struct {
	AllowedUsers    []string      // Slack user ids (U…/W…) and user-group ids (S…) allowed to request
	Approvers       []string      // same forms, allowed to approve/deny
	AllowedChannels []string      // empty: any channel
	ApprovalTTL     time.Duration // default 1h
	QueueMaxWait    time.Duration // how long an approved request may wait for a rate-limit slot (default 2h)
	CommandTimeout  time.Duration // per slash command / click work (default 20s)
	CallTimeout     time.Duration // one MDE call (default 30s)
	PollInterval    time.Duration // MachineAction status polling after the POST (default 30s)
	PollFor         time.Duration // stop following status after this (default 30m)
	GroupCacheTTL   time.Duration // user-group membership cache (default 5m)
	SchedulerEvery  time.Duration // scheduler tick (default 5s)
}

// Defaults for the zero fields of Config.
const (
	DefaultApprovalTTL    = time.Hour
	DefaultQueueMaxWait   = 2 * time.Hour
	DefaultCommandTimeout = 20 * time.Second
	DefaultCallTimeout    = 30 * time.Second
	DefaultPollInterval   = 30 * time.Second
	DefaultPollFor        = 30 * time.Minute
	DefaultGroupCacheTTL  = 5 * time.Minute
	DefaultSchedulerEvery = 5 * time.Second
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ApprovalTTL, DefaultApprovalTTL)
	def(&c.QueueMaxWait, DefaultQueueMaxWait)
	def(&c.CommandTimeout, DefaultCommandTimeout)
	def(&c.CallTimeout, DefaultCallTimeout)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.PollFor, DefaultPollFor)
	def(&c.GroupCacheTTL, DefaultGroupCacheTTL)
	def(&c.SchedulerEvery, DefaultSchedulerEvery)
	return c
}

// Deps are the parts a Service drives. Defender should have the same
// ratelimit.Gate set for its reads, so that every MDE call is rate limited.
type Deps struct {
	Defender  Defender
	Approvals Approvals
	Gate      Gate // reserves the slot of each Isolate/Unisolate; nil: the Defender admits writes itself (no queue notice)
	Messenger Messenger
	Directory Directory // may be nil when no S… group ids are configured
	Logger    zerolog.Logger
	Now       func() time.Time // default time.Now
	Version   string
}

// Invocation is one slash command as the transport received it.
type Invocation struct {
	Command   string // "/isolate" or "/unisolate"
	Text      string // everything after the command
	User      string // Slack user id of the caller
	Channel   string // channel id where it was typed
	TriggerID string
	RequestID string // transport delivery id (e.g. Socket Mode envelope id), for the audit log
}

// Click is one press of Approve or Deny on a request card.
type Click struct {
	RequestID string // "r-<n>", from the button value
	User      string // who clicked
	Channel   string // channel of the card
	MessageTS string // ts of the card
	Approve   bool   // false: Deny
	TriggerID string
}

// Service is the transport-neutral core of isolate-bot. It is safe for
// concurrent use; several Services (replicas) may share one store and never
// send the same request to MDE twice.
type Service struct {
	cfg Config
	d   Deps
	now func() time.Time
	log zerolog.Logger

	// bg carries background work (executions, status followers): detached
	// from the triggering command's ctx, cancelled by Stop or when
	// RunScheduler's ctx ends.
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]bool     // request ids this process is executing
	groups   map[string]groupHit // user-group membership cache
}

type groupHit struct {
	members map[string]bool
	at      time.Time
}

// New returns a Service. Zero Config durations take their defaults.
func New(cfg Config, deps Deps) *Service {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	bg, stop := context.WithCancel(context.Background())
	return &Service{
		cfg:      cfg.withDefaults(),
		d:        deps,
		now:      deps.Now,
		log:      deps.Logger,
		bg:       bg,
		stopBg:   stop,
		inflight: map[string]bool{},
		groups:   map[string]groupHit{},
	}
}

// Stop cancels background work (queued or running executions, status
// followers). An execution stopped mid-call stays "executing" in the store
// and a scheduler reconciles it with MDE later. Call Wait afterwards.
func (s *Service) Stop() { s.stopBg() }

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

// leaseFor is how long an executing request is ours before another
// replica may take it over.
func (s *Service) lease() time.Duration { return 2 * s.cfg.CallTimeout }

// isMember reports whether user is listed in ids directly or through one of
// the listed user groups (S…). A Directory failure is an error: callers
// fail closed.
func (s *Service) isMember(ctx context.Context, user string, ids []string) (bool, error) {
	for _, id := range ids {
		if id == user {
			return true, nil
		}
	}
	var errs []error
	for _, id := range ids {
		if !strings.HasPrefix(id, "S") {
			continue
		}
		members, err := s.groupMembers(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if members[user] {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

func (s *Service) groupMembers(ctx context.Context, group string) (map[string]bool, error) {
	now := s.now()
	s.mu.Lock()
	hit, ok := s.groups[group]
	s.mu.Unlock()
	if ok && now.Sub(hit.at) < s.cfg.GroupCacheTTL {
		return hit.members, nil
	}
	if s.d.Directory == nil {
		return nil, errors.New("no user directory is configured to resolve user group " + group)
	}
	list, err := s.d.Directory.GroupMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(list))
	for _, u := range list {
		m[u] = true
	}
	s.mu.Lock()
	s.groups[group] = groupHit{members: m, at: now}
	s.mu.Unlock()
	return m, nil
}

// claimLocal marks id as executed by this process; false if it already is.
func (s *Service) claimLocal(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[id] {
		return false
	}
	s.inflight[id] = true
	return true
}

func (s *Service) releaseLocal(id string) {
	s.mu.Lock()
	delete(s.inflight, id)
	s.mu.Unlock()
}

func (s *Service) isInflight(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[id]
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
	if err := s.d.Messenger.UpdateCard(ctx, r.Channel, r.MessageTS, Card{Request: r, Approvers: s.cfg.Approvers}); err != nil {
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
