package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/soc/isolate-bot/internal/app"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/console"
)

// runConsole is the terminal try-out: internal/app with the console as its
// transport, the simulator and in-memory state (unless DEFENDER_* /
// REDIS_URL say otherwise), driven from stdin. It runs no scheduler, so it
// never takes over requests of bots sharing its Redis; app.New refuses the
// simulator on their keys (REDIS_URL without a REDIS_PREFIX of its own).
func runConsole(ctx context.Context, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := config.LoadConsole(getenv)
	if err != nil {
		return err
	}
	// CONSOLE_SPEED (console only, default 1) divides the simulator's and
	// the follower's timings (LoadConsole's, see internal/config): scripts
	// and tests see the whole flow quickly.
	speed := 1.0
	if v := strings.TrimSpace(getenv("CONSOLE_SPEED")); v != "" {
		speed, err = strconv.ParseFloat(v, 64)
		if err != nil || speed < 1 || speed > 1000 {
			return fmt.Errorf("CONSOLE_SPEED must be a number from 1 to 1000 (how many times faster the simulator runs)")
		}
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }
	cfg.PollInterval, cfg.SchedulerEvery = scale(cfg.PollInterval), scale(cfg.SchedulerEvery)
	cfg.BulkProgressEvery = scale(cfg.BulkProgressEvery) // outbreak progress, and when its summary comes
	drain := scale(cfg.ConsoleDrain)

	log := app.NewLogger(cfg.LogLevel, cfg.LogFormat, stderr)

	channel := "C0CONSOLE"
	if len(cfg.AllowedChannelIDs) > 0 {
		channel = cfg.AllowedChannelIDs[0]
	}
	con := console.New(stdout, channel, identities(cfg))
	a, err := app.New(cfg, app.Options{
		Log:      log,
		Version:  version,
		Console:  &app.Console{Messenger: con, Directory: con},
		SimSpeed: speed,
		// The console never runs the scheduler: its own approved requests
		// start at approval, and it must not take over a bot's requests.
		NoScheduler: true,
	})
	if err != nil {
		return err
	}
	con.PrintBanner(banner(cfg, a))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(runCtx) }()

	quit, runErr := con.Run(ctx, stdin, a.Service(), isTerminal(stdin))
	if !quit && ctx.Err() == nil {
		// End of input: let running work finish so a piped script sees it.
		dctx, cancel := context.WithTimeout(ctx, drain)
		if a.FinishBackground(dctx) != nil && ctx.Err() == nil {
			fmt.Fprintf(stdout, "(console) stopped waiting for running work after %s\n", drain)
		}
		cancel()
	}
	stop()
	return errors.Join(runErr, <-ran)
}

// banner says what the console is connected to.
func banner(cfg config.Config, a *app.App) console.Banner {
	b := console.Banner{MDE: "real API at " + cfg.DefenderAPIURL + " (DEFENDER_SIMULATE=true for the simulator)",
		State: "in memory (set REDIS_URL to keep it in Redis; with the simulator, also a REDIS_PREFIX of the console's own)"}
	if sim := a.Simulator(); sim != nil {
		b.MDE = "simulator (set DEFENDER_SIMULATE=false and AZURE_* for the real API)"
		for _, m := range sim.Machines() {
			if !slices.Contains(b.Machines, m.ComputerDNSName) { // the simulator has a duplicate on purpose
				b.Machines = append(b.Machines, m.ComputerDNSName)
			}
		}
	}
	if cfg.UseRedis() {
		b.State = "Redis " + config.RedactRedisURL(cfg.RedisURL.Reveal()) + ", prefix " + cfg.RedisPrefix + " (empty REDIS_URL for in-memory)"
	}
	return b
}

// identities are the console's users: alice and bob for the default ids,
// otherwise the configured ids (requesters first, then approvers).
func identities(cfg config.Config) []console.Identity {
	known := map[string]console.Identity{
		config.ConsoleAnalyst: {ID: config.ConsoleAnalyst, Name: "alice", Role: "analyst"},
		config.ConsoleManager: {ID: config.ConsoleManager, Name: "bob", Role: "manager, approver"},
	}
	var out []console.Identity
	seen := map[string]bool{}
	add := func(id, role string) {
		if seen[id] || strings.HasPrefix(id, "S") { // groups cannot type commands
			return
		}
		seen[id] = true
		u, ok := known[id]
		if !ok {
			u = console.Identity{ID: id, Name: id, Role: role}
		}
		out = append(out, u)
	}
	for _, id := range cfg.AllowedUserIDs {
		add(id, "requester")
	}
	for _, id := range cfg.ApproverUserIDs {
		add(id, "approver")
	}
	if len(out) == 0 { // only groups configured
		out = append(out, known[config.ConsoleAnalyst])
	}
	return out
}

// isTerminal reports whether r is an interactive terminal (show a prompt)
// rather than a pipe or file (echo the commands instead).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
