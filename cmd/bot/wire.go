package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
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
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// stateStore is what the wiring needs from store.Approvals and
// store.MemoryApprovals beyond commands.Approvals.
type stateStore interface {
	commands.Approvals
	Ping(ctx context.Context) error
	Pending(ctx context.Context) (int, error)
}

// rateLimiter is ratelimit.Limiter or ratelimit.Memory.
type rateLimiter interface {
	ratelimit.Backend
	Ping(ctx context.Context) error
}

var (
	_ stateStore  = (*store.Approvals)(nil)
	_ stateStore  = (*store.MemoryApprovals)(nil)
	_ rateLimiter = (*ratelimit.Limiter)(nil)
	_ rateLimiter = (*ratelimit.Memory)(nil)
)

// core is everything below the transport: state, limiter, MDE and the
// commands.Service that drives them. The Slack bot and the console share it.
type core struct {
	rdb       redis.UniversalClient // nil: in-memory state
	approvals stateStore
	limiter   rateLimiter
	defender  commands.Defender
	gate      *ratelimit.Gate
	sim       *defender.Simulator // nil when talking to the real MDE API
	client    *defender.Client    // nil when simulating
}

// coreOptions are the knobs that differ between the bot and the console.
type coreOptions struct {
	now      func() time.Time
	log      zerolog.Logger
	metrics  *ops.Metrics // nil: no instrumentation
	simSpeed float64      // >1 runs the simulator's actions that many times faster
	console  bool         // the banner, not a log line, says state is in memory
}

// redisTimeout bounds the start-up PING: a wrong REDIS_URL should fail fast.
const redisTimeout = 5 * time.Second

// newRedis connects to REDIS_URL and PINGs it; nil, nil when state is in
// memory. Errors name the variable, never the URL (it may hold a password).
func newRedis(ctx context.Context, cfg config.Config) (redis.UniversalClient, error) {
	opts := cfg.RedisOptions()
	if opts == nil {
		return nil, nil
	}
	rdb := redis.NewUniversalClient(opts)
	pctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %s; check REDIS_URL and that Redis accepts connections from here", config.RedactRedisURL(cfg.RedisURL.Reveal()), ops.Redact(err.Error()))
	}
	return rdb, nil
}

// newCore builds state, limiter and MDE client from cfg. The caller closes
// core.rdb.
func newCore(ctx context.Context, cfg config.Config, o coreOptions) (*core, error) {
	c := &core{}
	rdb, err := newRedis(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.rdb = rdb
	acfg := store.ApprovalsConfig{Prefix: cfg.RedisPrefix, Retention: cfg.AuditRetention, Now: o.now}
	lcfg := ratelimit.Config{
		Limits: ratelimit.Limits{PerMinute: cfg.RateLimitPerMinute, PerHour: cfg.RateLimitPerHour},
		Prefix: cfg.RedisPrefix,
		Now:    o.now,
	}
	if rdb != nil {
		c.approvals, c.limiter = store.NewApprovals(rdb, acfg), ratelimit.New(rdb, lcfg)
	} else {
		if !o.console {
			o.log.Warn().Msg("REDIS_URL is empty: approvals, audit trail and rate limiter live in this process's memory; they are lost on restart and ONLY ONE replica may run (set REDIS_URL for more)")
		}
		c.approvals, c.limiter = store.NewMemoryApprovals(acfg), ratelimit.NewMemory(lcfg)
	}

	gate := ratelimit.NewGate(ops.InstrumentLimiter(c.limiter, o.metrics), cfg.QueueMaxWait, o.now, o.log)
	c.gate = gate
	if cfg.DefenderSimulate {
		c.sim = defender.NewSimulator(o.now)
		c.sim.Gate = gate
		if o.simSpeed > 1 {
			c.sim.PendingFor = time.Duration(float64(2*time.Second) / o.simSpeed)
			c.sim.CompleteAfter = time.Duration(float64(5*time.Second) / o.simSpeed)
		}
		c.defender = ops.InstrumentDefender(c.sim, o.metrics)
		return c, nil
	}
	client, err := defender.New(defender.Config{
		APIURL:         cfg.DefenderAPIURL,
		Scope:          cfg.DefenderScope,
		AuthorityHost:  cfg.AzureAuthorityHost,
		TenantID:       cfg.AzureTenantID,
		ClientID:       cfg.AzureClientID,
		ClientSecret:   cfg.AzureClientSecret.Reveal(),
		CertificatePEM: []byte(cfg.AzureCertificatePEM.Reveal()),
		UserAgent:      "isolate-bot/" + version,
		Gate:           gate,
		Logger:         o.log,
		Now:            o.now,
	})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("MDE client: %w", err)
	}
	c.client = client
	c.defender = ops.InstrumentDefender(client, o.metrics)
	return c, nil
}

// service builds the commands.Service over c for one transport.
func (c *core) service(cfg config.Config, o coreOptions, ccfg commands.Config, msg commands.Messenger, dir commands.Directory) *commands.Service {
	ccfg.AllowedUsers = cfg.AllowedUserIDs
	ccfg.Approvers = cfg.ApproverUserIDs
	ccfg.AllowedChannels = cfg.AllowedChannelIDs
	ccfg.ApprovalTTL = cfg.ApprovalTTL
	ccfg.QueueMaxWait = cfg.QueueMaxWait
	ccfg.CallTimeout = cfg.MDECallTimeout
	return commands.New(ccfg, commands.Deps{
		Defender:  c.defender,
		Approvals: ops.InstrumentApprovals(c.approvals, o.metrics),
		Gate:      c.gate,
		Messenger: msg,
		Directory: dir,
		Logger:    o.log,
		Now:       o.now,
		Version:   version,
	})
}

func (c *core) close() error {
	if c.rdb == nil {
		return nil
	}
	return c.rdb.Close()
}

// newSlackAPI is the Slack Web API client: bot token for chat.*, app token
// for Socket Mode, SLACK_API_URL for GovSlack or a test fake.
func newSlackAPI(cfg config.Config) *slack.Client {
	return slack.New(cfg.SlackBotToken.Reveal(),
		slack.OptionAppLevelToken(cfg.SlackAppToken.Reveal()),
		slack.OptionAPIURL(cfg.SlackAPIURL),
		slack.OptionHTTPClient(&http.Client{Timeout: 30 * time.Second}),
	)
}

// serveBot runs the Slack bot, the scheduler and the ops HTTP server until
// ctx ends or one of them fails, then shuts down in order: stop taking
// Slack deliveries and drain them, stop background executions (a scheduler
// reconciles anything cut short), stop the HTTP server, close Redis.
func serveBot(ctx context.Context, cfg config.Config, log zerolog.Logger, now func() time.Time) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The listener comes first: a taken port should fail before we connect anywhere.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()

	// The pending-requests gauge reads the store, which exists only after
	// newCore: metrics ask through this indirection.
	var approvals stateStore
	metrics, err := ops.NewMetrics(reg, ops.MetricsOptions{
		Now: now,
		PendingRequests: func(ctx context.Context) (int, error) {
			if approvals == nil {
				return 0, errors.New("state store not ready")
			}
			return approvals.Pending(ctx)
		},
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	o := coreOptions{now: now, log: log, metrics: metrics}
	c, err := newCore(ctx, cfg, o)
	if err != nil {
		return err
	}
	approvals = c.approvals

	api := newSlackAPI(cfg)
	slackMsg := bot.NewSlack(api, log)
	svc := c.service(cfg, o, commands.Config{}, slackMsg, slackMsg)
	// SHUTDOWN_TIMEOUT is split: half to drain Slack deliveries, 30% for
	// background MDE work, 20% for the HTTP server.
	runner := bot.New(bot.Config{Workers: cfg.Workers, DrainTimeout: cfg.ShutdownTimeout / 2, Now: now},
		svc, api, c.approvals, log, metrics)

	checks := []ops.Check{
		{Name: "slack", Func: func(context.Context) error {
			if !runner.Connected() {
				return errors.New("Socket Mode is not connected to Slack")
			}
			return nil
		}},
		{Name: "state", Func: c.approvals.Ping},
		{Name: "limiter", Func: c.limiter.Ping},
	}
	if c.client != nil {
		// MSAL serves the cached token until shortly before expiry, so this
		// reaches Azure AD about once an hour, not on every probe.
		checks = append(checks, ops.Check{Name: "azure token", Func: c.client.Token})
	}
	srv := ops.NewServer(cfg.HTTPAddr, checks, reg, log, ops.Options{})

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var bg sync.WaitGroup
	bg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("ops HTTP server on %s: %w", cfg.HTTPAddr, err))
		}
	})
	bg.Go(func() {
		if err := ignoreCanceled(svc.RunScheduler(ctx)); err != nil {
			cancel(fmt.Errorf("scheduler: %w", err))
		}
	})
	log.Info().Str("http_addr", ln.Addr().String()).Msg("serving")

	// Run blocks until ctx ends (or Slack refuses the app token) and has
	// drained Slack deliveries when it returns.
	var errs []error
	if err := ignoreCanceled(runner.Run(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("slack: %w", err))
	}
	cancel(nil)
	log.Info().Msg("shutting down")

	svc.Stop()
	drained := make(chan struct{})
	go func() { svc.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(cfg.ShutdownTimeout * 3 / 10):
		errs = append(errs, fmt.Errorf("background work still running after %s; a scheduler will reconcile it on the next start", cfg.ShutdownTimeout*3/10))
	}

	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout/5)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("ops HTTP server shutdown: %w", err))
	}
	bg.Wait()
	if err := c.close(); err != nil {
		errs = append(errs, fmt.Errorf("close Redis: %w", err))
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		errs = append([]error{cause}, errs...)
	}
	if len(errs) == 0 {
		log.Info().Msg("stopped")
	}
	return errors.Join(errs...)
}
