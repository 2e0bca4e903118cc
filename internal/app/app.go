// Package app is isolate-bot's one wiring. New builds every part once from
// the configuration: Redis (or in-memory state), the state store, the rate
// limiter and its gate, the MDE client or simulator, the metrics decorators,
// the commands.Service, the transport (Slack Socket Mode, or the console's
// Messenger) and the ops HTTP server. Run serves until its context ends or a
// part fails and then shuts the parts down in the order of shutdownSteps.
//
// The Slack bot, the console and the in-process end-to-end tests all run
// this package; the differences are Options, not a second wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/ops"
)

// Options are what differs between production, the console and tests. The
// zero value is production (apart from Log, which discards).
type Options struct {
	// Now is every part's clock; nil means time.Now.
	Now func() time.Time
	// Log is the root logger (cmd/bot builds it with NewLogger). The zero
	// value discards.
	Log zerolog.Logger
	// Version is reported to MDE (User-Agent) and in the usage text.
	Version string
	// MDEHTTPClient carries the calls to Azure AD and MDE (tests: a client
	// trusting the fake's certificate); nil: a plain http.Client (each
	// attempt is bounded by MDE_CALL_TIMEOUT).
	MDEHTTPClient *http.Client
	// SlackHTTPClient carries the Slack Web API calls; nil: a client with
	// config's SlackCallTimeout. SLACK_API_URL says where they go.
	SlackHTTPClient *http.Client
	// Console, when set, is the transport instead of Slack: no Socket Mode
	// runner and no ops HTTP server (nothing to probe, and HTTP_ADDR would
	// clash with a bot on the same host).
	Console *Console
	// NoScheduler runs no scheduler loop: pending requests do not expire and
	// stranded ones are not taken over by this process. Always on with
	// Console: a try-out must never take over (and run against its
	// simulator) requests of bots sharing its Redis; its own approved
	// requests start at approval.
	NoScheduler bool
	// SimSpeed > 1 runs the simulator's actions that many times faster (the
	// console's CONSOLE_SPEED). The timings without a variable (status
	// polling, the scheduler, the limiter's windows) are config.Fixed: the
	// console and tests shorten them on the Config they pass to New.
	SimSpeed float64
}

// Console is the console's transport: cards and replies go to Messenger,
// user groups are resolved by Directory (may be nil).
type Console struct {
	Messenger commands.Messenger
	Directory commands.Directory
}

// withClock sets a nil clock to time.Now; every other value comes from
// the configuration.
func (o Options) withClock() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Console != nil {
		o.NoScheduler = true
	}
	return o
}

// stateStore is what the wiring needs from store.Approvals and
// store.MemoryApprovals beyond commands.Approvals.
type stateStore interface {
	commands.Approvals
	commands.Throttle
	commands.Follows
	Ping(ctx context.Context) error
	Pending(ctx context.Context) (int, error)
}

// App is one running isolate-bot: build it with New, run it with Run.
type App struct {
	cfg config.Config
	o   Options
	log zerolog.Logger

	rdb    redis.UniversalClient // nil: in-memory state
	store  stateStore
	mde    *mdeParts
	svc    *commands.Service
	drain  drainLoop    // outbreak mode's drain loop (drain.go)
	runner *bot.Runner  // nil with the console
	ln     net.Listener // nil with the console
	srv    *http.Server // nil with the console
	reg    *prometheus.Registry

	running  atomic.Bool
	released sync.Once

	// Set by Run, read by the shutdown steps.
	stopIntake    context.CancelFunc
	transportDone chan struct{}
	transportErr  error
	httpDone      chan struct{}

	mu         sync.Mutex // guards the scheduler fields
	schedStop  context.CancelFunc
	schedDone  chan struct{}
	schedEnded bool // stopScheduler ran: never start it again
}

// New builds every part from cfg. It listens on HTTP_ADDR first (a taken
// port fails before anything else is contacted), then connects to Redis.
// On error everything acquired so far is released.
func New(cfg config.Config, o Options) (*App, error) {
	o = o.withClock()
	if err := checkConsoleState(cfg, o); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, o: o, log: o.Log}
	ok := false
	defer func() {
		if !ok {
			a.release()
		}
	}()
	if o.Console == nil {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
		a.ln = ln
	}
	rdb, err := newRedis(cfg)
	if err != nil {
		return nil, err
	}
	a.rdb = rdb
	a.store = newStore(cfg, o, rdb)

	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := ops.NewMetrics(a.reg, ops.MetricsOptions{Now: o.Now, PendingRequests: a.store.Pending})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if a.mde, err = newMDE(cfg, o, rdb, metrics, false); err != nil {
		return nil, err
	}
	a.build(metrics)
	ok = true
	return a, nil
}

// build puts the service, the transport and the HTTP server on top of the
// store and MDE parts.
func (a *App) build(metrics *ops.Metrics) {
	cfg, o := a.cfg, a.o
	var msg commands.Messenger
	var dir commands.Directory
	var api *slack.Client
	transport := "Slack"
	if o.Console != nil {
		msg, dir, transport = o.Console.Messenger, o.Console.Directory, "console"
	} else {
		api = newSlackAPI(cfg, o)
		s := bot.NewSlack(api, a.log)
		msg, dir = s, s
	}
	a.svc = commands.New(commands.Config{
		AllowedUsers:      cfg.AllowedUserIDs,
		Approvers:         cfg.ApproverUserIDs,
		AllowedChannels:   cfg.AllowedChannelIDs,
		ApprovalTTL:       cfg.ApprovalTTL,
		QueueMaxWait:      cfg.QueueMaxWait,
		CommandTimeout:    cfg.CommandTimeout,
		CallTimeout:       cfg.MDECallTimeout,
		PollInterval:      cfg.PollInterval,
		PollFastFor:       cfg.PollFastFor,
		PollMaxInterval:   cfg.PollMaxInterval,
		FollowFor:         cfg.FollowFor,
		GroupCacheTTL:     cfg.GroupCacheTTL,
		SchedulerEvery:    cfg.SchedulerEvery,
		ResendBackoff:     cfg.ResendBackoff,
		ReconcileChecks:   cfg.ReconcileChecks,
		RefusalBurst:      cfg.RefusalBurst,
		RefusalWindow:     cfg.RefusalWindow,
		BulkProgressEvery: cfg.BulkProgressEvery,
		BulkReadEvery:     cfg.BulkReadEvery,
		BulkReadSkew:      cfg.BulkReadSkew,
		Protected:         cfg.ProtectedMachines,
		ProtectedMode:     cfg.ProtectedMode,
		BulkMax:           cfg.BulkMax,
		// More machines than this need two different approvers.
		BulkTwoApproversOver: cfg.BulkTwoApproversOver,
		RatePerMinute:        cfg.RateLimitPerMinute,
	}, commands.Deps{
		Defender:  a.mde.defender,
		Approvals: ops.InstrumentApprovals(a.store, metrics),
		Gate:      a.mde.gate,
		Messenger: msg,
		Directory: dir,
		Throttle:  a.store,
		Follows:   a.store,
		Transport: transport,
		Logger:    a.log,
		Now:       o.Now,
		Version:   o.Version,
	})
	a.drain.d = a.newDrainer(metrics)
	if api == nil {
		return
	}
	a.runner = bot.New(bot.Config{
		Workers:      cfg.Workers,
		Queue:        cfg.CommandQueue,
		ClickWorkers: cfg.ClickWorkers,
		ClickQueue:   cfg.ClickQueue,
		// The one command timeout: the delivery's deadline is the
		// service's own, never shorter (issue 9, item 21).
		CommandTimeout: cfg.CommandTimeout,
		DrainTimeout:   a.budget(stepInFlight),
		DedupTTL:       cfg.DedupTTL,
		Now:            o.Now,
	}, a.svc, api, a.store, a.log, metrics)
	a.srv = ops.NewServer(cfg.HTTPAddr, a.checks(), a.reg, a.log, ops.Options{CheckTimeout: cfg.ReadyCheckTimeout})
}

// checks are the readiness checks behind /readyz.
func (a *App) checks() []ops.Check {
	checks := []ops.Check{
		{Name: "slack", Func: func(context.Context) error {
			if !a.runner.Connected() {
				return errors.New("Socket Mode is not connected to Slack")
			}
			return nil
		}},
		{Name: "state", Func: a.store.Ping},
		{Name: "limiter", Func: a.mde.limiter.Ping},
	}
	if a.mde.client != nil {
		// MSAL serves the cached token until shortly before expiry, so this
		// reaches Azure AD about once an hour, not on every probe.
		checks = append(checks, ops.Check{Name: "azure token", Func: a.mde.client.Token})
	}
	return checks
}

// Service is the commands.Service: the console drives it, tests assert on it.
func (a *App) Service() *commands.Service { return a.svc }

// Simulator is the MDE simulator, or nil when talking to the real API.
func (a *App) Simulator() *defender.Simulator { return a.mde.sim }

// Addr is the ops HTTP server's address (HTTP_ADDR with the port resolved),
// or "" with the console.
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Connected reports whether the Slack Socket Mode connection is up (always
// false with the console).
func (a *App) Connected() bool { return a.runner != nil && a.runner.Connected() }

// Close releases what New acquired (the HTTP listener, Redis) for an App
// whose Run was never called; Run releases them itself.
func (a *App) Close() error {
	if a.running.Load() {
		return nil
	}
	return a.release()
}

// release closes the listener and Redis, once.
func (a *App) release() error {
	var err error
	a.released.Do(func() {
		if a.ln != nil {
			_ = a.ln.Close() // already closed when the HTTP server ran
		}
		if a.rdb != nil {
			err = a.rdb.Close()
		}
	})
	return err
}
