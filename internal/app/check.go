package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/ops"
)

// checkItem is one line of `bot check`: ok with a detail, or FAIL with what
// went wrong and a hint on what to do.
type checkItem struct {
	name string
	hint string // shown after a failure
	run  func(ctx context.Context, cfg config.Config, o Options) (detail string, err error)
}

// checkItems lists what `bot check` verifies, in order, after the configuration.
var checkItems = []checkItem{
	{name: "redis", hint: "check REDIS_URL (host, port, password, rediss:// for TLS) and that Redis accepts connections from here", run: checkRedis},
	{name: "slack api", hint: "check SLACK_BOT_TOKEN (reinstall the app to get a fresh xoxb- token) and SLACK_API_URL", run: checkSlackAPI},
	{name: "slack socket mode", hint: "check SLACK_APP_TOKEN has connections:write and Socket Mode is enabled in the app settings", run: checkSocketMode},
	{name: "azure token", hint: "check AZURE_TENANT_ID, AZURE_CLIENT_ID, the secret or certificate, AZURE_AUTHORITY_HOST and DEFENDER_SCOPE; the app needs Machine.Isolate and Machine.Read.All with admin consent", run: checkAzureToken},
	{name: "mde read", hint: "check DEFENDER_API_URL (the right geo or Gov host) and that the Azure app has the Machine.Read.All application permission with admin consent", run: checkMDERead},
}

// Check reaches every dependency of a valid configuration with the same
// clients the bot builds, printing one line per check to out (the caller
// has printed the configuration's problems, if any). Any failure makes it
// return an error.
func Check(ctx context.Context, cfg config.Config, o Options, out io.Writer) error {
	o = o.withClock()
	state := "in-memory state (single replica)"
	if cfg.UseRedis() {
		state = "Redis state"
	}
	mde := "real MDE API at " + cfg.DefenderAPIURL
	if cfg.DefenderSimulate {
		mde = "MDE simulator"
	}
	fmt.Fprintf(out, "ok   config: %s, %s\n", mde, state)

	failed := 0
	for _, c := range checkItems {
		cctx, cancel := context.WithTimeout(ctx, cfg.BotCheckTimeout)
		detail, err := c.run(cctx, cfg, o)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(out, "FAIL %s: %s — %s\n", c.name, ops.Redact(err.Error()), c.hint)
			continue
		}
		fmt.Fprintf(out, "ok   %s: %s\n", c.name, detail)
	}
	if failed > 0 {
		return fmt.Errorf("check failed: %d of %d checks failed", failed, len(checkItems)+1)
	}
	return nil
}

func checkRedis(ctx context.Context, cfg config.Config, _ Options) (string, error) {
	opts := cfg.RedisOptions()
	if opts == nil {
		return "not configured (REDIS_URL is empty): in-memory state, run exactly one replica", nil
	}
	rdb := redis.NewUniversalClient(opts)
	defer rdb.Close()
	start := time.Now()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return "", fmt.Errorf("PING %s: %w", config.RedactRedisURL(cfg.RedisURL.Reveal()), err)
	}
	return fmt.Sprintf("PING %s answered in %s", config.RedactRedisURL(cfg.RedisURL.Reveal()), time.Since(start).Round(time.Millisecond)), nil
}

func checkSlackAPI(ctx context.Context, cfg config.Config, o Options) (string, error) {
	res, err := newSlackAPI(cfg, o).AuthTestContext(ctx)
	if err != nil {
		return "", fmt.Errorf("auth.test: %w", err)
	}
	return fmt.Sprintf("auth.test: bot user %s in team %s (%s)", res.UserID, res.Team, res.TeamID), nil
}

func checkSocketMode(ctx context.Context, cfg config.Config, o Options) (string, error) {
	// apps.connections.open hands out a WebSocket URL; not dialling it
	// keeps the check from stealing deliveries from running replicas.
	if _, _, err := newSlackAPI(cfg, o).StartSocketModeContext(ctx); err != nil {
		return "", fmt.Errorf("apps.connections.open: %w", err)
	}
	return "apps.connections.open accepted the app token", nil
}

// checkProbeName is looked up by `bot check`: a name no device has, so the
// read is cheap and proves only that the API answers and the app may read.
const checkProbeName = "isolate-bot-check.invalid"

func checkMDERead(ctx context.Context, cfg config.Config, o Options) (string, error) {
	if cfg.DefenderSimulate {
		return "skipped: DEFENDER_SIMULATE=true, no MDE call is made", nil
	}
	// The probe counts against the shared budget like any other call, so
	// running check beside busy replicas cannot push MDE into throttling.
	var rdb redis.UniversalClient
	if opts := cfg.RedisOptions(); opts != nil {
		rdb = redis.NewUniversalClient(opts)
		defer rdb.Close()
	}
	p, err := newMDE(cfg, o, rdb, nil, true)
	if err != nil {
		return "", err
	}
	ms, err := p.client.FindMachinesByName(ctx, checkProbeName)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("GET /api/machines answered (%d devices named %s)", len(ms), checkProbeName), nil
}

func checkAzureToken(ctx context.Context, cfg config.Config, o Options) (string, error) {
	if cfg.DefenderSimulate {
		return "skipped: DEFENDER_SIMULATE=true, no MDE call is made", nil
	}
	p, err := newMDE(cfg, o, nil, nil, true)
	if err != nil {
		return "", err
	}
	if err := p.client.Token(ctx); err != nil {
		return "", err
	}
	return "token issued for " + cfg.DefenderScope + " by " + cfg.Authority(), nil
}
