package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/ops"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

const usage = `isolate-bot isolates compromised machines from Slack through Microsoft
Defender for Endpoint, with manager approval.

Usage:
  bot            run the Slack bot (Socket Mode)
  bot console    try it in this terminal: simulated MDE, in-memory state, no account needed
  bot check      validate the configuration and reach every dependency
  bot healthz    exit 0 if the bot on HTTP_ADDR answers /healthz (Docker HEALTHCHECK)
  bot version    print the version
  bot help       show this text

Configuration comes from environment variables and, for local development,
a .env file in the working directory (the environment wins). Every variable
is listed in README.md and .env.example.
`

// run is the whole program; main only maps its error to exit status 1.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	sub := ""
	if len(args) > 1 {
		sub = args[1]
	}
	if len(args) > 2 {
		return fmt.Errorf("bot %s takes no arguments (got %q); configuration comes from the environment, see bot help", sub, args[2:])
	}
	switch sub {
	case "help", "-h", "-help", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	case "version", "-version", "--version":
		_, err := fmt.Fprintln(stdout, versionString())
		return err
	case "healthz":
		// Only HTTP_ADDR matters: a probe every 30 s should not re-validate
		// (and re-read the certificate of) the whole configuration.
		addr := getenv("HTTP_ADDR")
		if addr == "" {
			addr = config.DefaultHTTPAddr
		}
		return ops.ProbeLocal(ctx, nil, addr, "/healthz")
	case "", "console", "check":
	default:
		return fmt.Errorf("unknown subcommand %q: run `bot help` for the list", sub)
	}

	getenv, err := config.WithDotEnv(".env", getenv)
	if err != nil {
		return err
	}
	switch sub {
	case "console":
		return runConsole(ctx, getenv, stdin, stdout, stderr)
	case "check":
		return runCheck(ctx, getenv, stdout)
	default:
		return runBot(ctx, getenv, stderr)
	}
}

// runBot serves Slack until ctx ends (SIGINT/SIGTERM), then shuts down in order.
func runBot(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	log.Info().Str("version", version).Bool("simulate", cfg.DefenderSimulate).Bool("redis", cfg.UseRedis()).
		Str("defender_api", cfg.DefenderAPIURL).Msg("starting isolate-bot")
	log.Debug().Str("config", cfg.Redacted()).Msg("configuration")
	return serveBot(ctx, cfg, log, time.Now)
}

// newLogger builds the root logger: JSON for collectors, or zerolog's
// console writer for humans, on w (stderr). It also becomes the
// context default, so zerolog.Ctx never silently drops a line.
func newLogger(level zerolog.Level, format string, w io.Writer) zerolog.Logger {
	out := w
	if format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	log := zerolog.New(out).Level(level).With().Timestamp().Str("service", "isolate-bot").Logger()
	zerolog.DefaultContextLogger = &log
	// go-redis logs pool trouble through its own stderr logger; keep one format.
	redis.SetLogger(redisLogger{log.With().Str("component", "redis").Logger()})
	return log
}

// redisLogger adapts zerolog to go-redis's internal logging.
type redisLogger struct{ l zerolog.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn().Msg(ops.Redact(fmt.Sprintf(format, v...)))
}

func versionString() string {
	s := "isolate-bot " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				s += " (" + kv.Value[:12] + ")"
			}
		}
		s += " " + bi.GoVersion
	}
	return s
}

// ignoreCanceled maps the normal end of a component (its ctx ended) to nil.
func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
