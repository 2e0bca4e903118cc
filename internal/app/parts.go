package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/ops"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// newRedis connects to REDIS_URL and PINGs it; nil, nil when state is in
// memory. Errors name the variable, never the URL (it may hold a password).
func newRedis(cfg config.Config) (redis.UniversalClient, error) {
	opts := cfg.RedisOptions()
	if opts == nil {
		return nil, nil
	}
	rdb := redis.NewUniversalClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RedisStartTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %s; check REDIS_URL and that Redis accepts connections from here", config.RedactRedisURL(cfg.RedisURL.Reveal()), ops.Redact(err.Error()))
	}
	return rdb, nil
}

// newStore is the approvals and audit store: on Redis, or in memory.
func newStore(cfg config.Config, o Options, rdb redis.UniversalClient) stateStore {
	acfg := store.ApprovalsConfig{Prefix: cfg.RedisPrefix, Retention: cfg.AuditRetention,
		AuditMaxLen: cfg.AuditMaxLen, Now: o.Now}
	if rdb != nil {
		return store.NewApprovals(rdb, acfg)
	}
	if o.Console == nil { // the console's banner says it instead
		o.Log.Warn().Msg("REDIS_URL is empty: approvals, audit trail and rate limiter live in this process's memory; they are lost on restart and ONLY ONE replica may run (set REDIS_URL for more)")
	}
	return store.NewMemoryApprovals(acfg)
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

// mdeParts are the rate limiter and the MDE client or simulator behind its
// gate.
type mdeParts struct {
	limiter  rateLimiter
	gate     *ratelimit.Gate     // admits every MDE call; commands reserves writes on it
	defender commands.Defender   // instrumented client or simulator
	client   *defender.Client    // nil when simulating
	sim      *defender.Simulator // nil when talking to the real MDE API
}

// newMDE is the one place the rate limiter, the gate that admits every MDE
// call through it, and the MDE client (or simulator) behind the gate are put
// together. rdb nil: the limiter lives in memory. probe is `bot check`'s
// single read: no queueing for a slot, and one attempt.
func newMDE(cfg config.Config, o Options, rdb redis.UniversalClient, m *ops.Metrics, probe bool) (*mdeParts, error) {
	lcfg := ratelimit.Config{
		Limits: ratelimit.Limits{PerMinute: cfg.RateLimitPerMinute, PerHour: cfg.RateLimitPerHour,
			Minute: cfg.RateLimitMinute, Hour: cfg.RateLimitHour},
		Prefix: cfg.RedisPrefix,
		Now:    o.Now,
	}
	p := &mdeParts{}
	if rdb != nil {
		p.limiter = ratelimit.New(rdb, lcfg)
	} else {
		p.limiter = ratelimit.NewMemory(lcfg)
	}
	maxWait := cfg.QueueMaxWait
	if probe {
		maxWait = 0
	}
	gate := ratelimit.NewGate(ops.InstrumentLimiter(p.limiter, m), maxWait, o.Now, o.Log)
	p.gate = gate

	if cfg.DefenderSimulate {
		p.sim = defender.NewSimulator(o.Now)
		p.sim.Gate = gate
		if o.SimSpeed > 1 {
			p.sim.PendingFor = time.Duration(float64(p.sim.PendingFor) / o.SimSpeed)
			p.sim.CompleteAfter = time.Duration(float64(p.sim.CompleteAfter) / o.SimSpeed)
		}
		p.defender = ops.InstrumentDefender(p.sim, m)
		return p, nil
	}
	dcfg := defender.Config{
		APIURL:         cfg.DefenderAPIURL,
		Scope:          cfg.DefenderScope,
		AuthorityHost:  cfg.AzureAuthorityHost,
		TenantID:       cfg.AzureTenantID,
		ClientID:       cfg.AzureClientID,
		ClientSecret:   cfg.AzureClientSecret.Reveal(),
		CertificatePEM: []byte(cfg.AzureCertificatePEM.Reveal()),
		HTTPClient:     o.MDEHTTPClient,
		UserAgent:      "isolate-bot/" + o.Version,
		Gate:           gate,
		Logger:         o.Log,
		Now:            o.Now,

		MaxGetAttempts:     cfg.MDEMaxGetAttempts,
		BaseBackoff:        cfg.MDEBaseBackoff,
		MaxBackoff:         cfg.MDEMaxBackoff,
		MaxRetryAfterWait:  cfg.MDEMaxRetryAfterWait,
		NotFoundRetryDelay: cfg.MDENotFoundRetryDelay,
		// MDE_CALL_TIMEOUT bounds each HTTP attempt as well as the whole
		// call (commands' CallTimeout): issue 9, item 21.
		AttemptTimeout: cfg.MDECallTimeout,
	}
	if probe {
		dcfg.MaxGetAttempts = 1
	}
	client, err := defender.New(dcfg)
	if err != nil {
		return nil, fmt.Errorf("MDE client: %w", err)
	}
	p.client = client
	p.defender = ops.InstrumentDefender(client, m)
	return p, nil
}

// newSlackAPI is the Slack Web API client: bot token for chat.*, app token
// for Socket Mode, SLACK_API_URL for GovSlack or a test fake.
func newSlackAPI(cfg config.Config, o Options) *slack.Client {
	hc := o.SlackHTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.SlackCallTimeout}
	}
	return slack.New(cfg.SlackBotToken.Reveal(),
		slack.OptionAppLevelToken(cfg.SlackAppToken.Reveal()),
		slack.OptionAPIURL(cfg.SlackAPIURL),
		slack.OptionHTTPClient(hc),
	)
}
