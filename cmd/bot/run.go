package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/soc/isolate-bot/internal/app"
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

// runBot serves Slack until ctx ends (SIGINT/SIGTERM); internal/app then
// shuts down in its documented order.
func runBot(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	log.Info().Str("version", version).Bool("simulate", cfg.DefenderSimulate).Bool("redis", cfg.UseRedis()).
		Str("defender_api", cfg.DefenderAPIURL).Msg("starting isolate-bot")
	log.Debug().Str("config", cfg.Redacted()).Msg("configuration")
	a, err := app.New(cfg, app.Options{Log: log, Version: version})
	if err != nil {
		return err
	}
	return a.Run(ctx)
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
