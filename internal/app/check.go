package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/ops"
)

// checkWarning is a check that could not verify everything but found
// nothing wrong: printed as WARN, it does not fail `bot check`.
type checkWarning string

func (w checkWarning) Error() string { return string(w) }

// hintedError is a failure that knows its own fix, shown instead of the
// check's general hint.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() + " — " + e.hint }
func (e *hintedError) Unwrap() error { return e.err }

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
		var warn checkWarning
		var hinted *hintedError
		switch {
		case errors.As(err, &warn):
			fmt.Fprintf(out, "WARN %s: %s\n", c.name, ops.Redact(warn.Error()))
		case errors.As(err, &hinted):
			failed++
			fmt.Fprintf(out, "FAIL %s: %s — %s\n", c.name, ops.Redact(hinted.err.Error()), hinted.hint)
		case err != nil:
			failed++
			fmt.Fprintf(out, "FAIL %s: %s — %s\n", c.name, ops.Redact(err.Error()), c.hint)
		default:
			fmt.Fprintf(out, "ok   %s: %s\n", c.name, detail)
		}
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
	// The roles come from the token's payload, decoded without verifying
	// its signature: they only feed this advice (MDE checks the token).
	roles, err := p.client.TokenRoles(ctx)
	issued := "token issued for " + cfg.DefenderScope + " by " + cfg.Authority()
	switch {
	case errors.Is(err, defender.ErrRolesUnreadable):
		return "", checkWarning(issued + ", but " + err.Error() +
			", so its application permissions were not checked; a missing one shows as HTTP 403 naming it")
	case err != nil:
		return "", err
	}
	if missing := defender.MissingRoles(roles); len(missing) > 0 {
		perms, noun := strings.Join(missing, " and "), "permission"
		if len(missing) > 1 {
			noun = "permissions"
		}
		return "", &hintedError{
			err: fmt.Errorf("%s, but the app lacks the application %s %s (the token's roles: %s)",
				issued, noun, perms, orNone(roles)),
			hint: "in Entra ID, App registrations → this app → API permissions → Add a permission → APIs my organization uses → " +
				"WindowsDefenderATP → Application permissions, add " + perms + ", then Grant admin consent",
		}
	}
	return issued + " with the application permissions " + strings.Join(roles, ", "), nil
}

func orNone(roles []string) string {
	if len(roles) == 0 {
		return "none"
	}
	return strings.Join(roles, ", ")
}
