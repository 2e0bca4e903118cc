package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/console"
)

// Console timings at CONSOLE_SPEED=1: quick enough to watch an action go
// Pending → InProgress → Succeeded in a few seconds (the simulator takes 5 s).
const (
	consolePoll     = time.Second
	consoleSchedule = time.Second
	consolePollFor  = 2 * time.Minute
	// consoleDrain bounds the wait after end of input for running work
	// (status following) so a piped script sees the outcome.
	consoleDrain = time.Minute
)

// runConsole is the terminal try-out: the commands.Service with the
// simulator and in-memory state (unless DEFENDER_* / REDIS_URL say
// otherwise), driven from stdin.
func runConsole(ctx context.Context, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := config.LoadConsole(getenv)
	if err != nil {
		return err
	}
	// CONSOLE_SPEED (console only, default 1) divides the simulator's and
	// the follower's timings: scripts and tests see the whole flow quickly.
	speed := 1.0
	if v := strings.TrimSpace(getenv("CONSOLE_SPEED")); v != "" {
		speed, err = strconv.ParseFloat(v, 64)
		if err != nil || speed < 1 || speed > 1000 {
			return fmt.Errorf("CONSOLE_SPEED must be a number from 1 to 1000 (how many times faster the simulator runs)")
		}
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }

	// A terminal wants warnings only, readable; explicit settings win.
	level, format := cfg.LogLevel, cfg.LogFormat
	if getenv("LOG_LEVEL") == "" {
		level = zerolog.WarnLevel
	}
	if getenv("LOG_FORMAT") == "" {
		format = "console"
	}
	log := newLogger(level, format, stderr)

	o := coreOptions{now: time.Now, log: log, simSpeed: speed, console: true}
	c, err := newCore(ctx, cfg, o)
	if err != nil {
		return err
	}
	defer c.close()

	channel := "C0CONSOLE"
	if len(cfg.AllowedChannelIDs) > 0 {
		channel = cfg.AllowedChannelIDs[0]
	}
	con := console.New(stdout, channel, identities(cfg))
	svc := c.service(cfg, o, commands.Config{
		PollInterval:   scale(consolePoll),
		PollFor:        scale(consolePollFor),
		SchedulerEvery: scale(consoleSchedule),
	}, con, con)

	b := console.Banner{MDE: "real API at " + cfg.DefenderAPIURL + " (DEFENDER_SIMULATE=true for the simulator)",
		State: "in memory (set REDIS_URL to share state with running bots)"}
	if c.sim != nil {
		b.MDE = "simulator (set DEFENDER_SIMULATE=false and AZURE_* for the real API)"
		for _, m := range c.sim.Machines() {
			if !slices.Contains(b.Machines, m.ComputerDNSName) { // the simulator has a duplicate on purpose
				b.Machines = append(b.Machines, m.ComputerDNSName)
			}
		}
	}
	if cfg.UseRedis() {
		b.State = "Redis " + config.RedactRedisURL(cfg.RedisURL.Reveal()) + " (empty REDIS_URL for in-memory)"
	}
	con.PrintBanner(b)

	// The console ticks the scheduler itself rather than through
	// RunScheduler, so that at end of input it can stop new work from
	// starting and then wait for what runs, without stopping it.
	tickCtx, stopTicks := context.WithCancel(ctx)
	var ticks sync.WaitGroup
	ticks.Go(func() {
		t := time.NewTicker(scale(consoleSchedule))
		defer t.Stop()
		for {
			if err := svc.Tick(tickCtx); err != nil && tickCtx.Err() == nil {
				log.Error().Err(err).Msg("scheduler pass failed")
			}
			select {
			case <-tickCtx.Done():
				return
			case <-t.C:
			}
		}
	})

	quit, runErr := con.Run(ctx, stdin, svc, isTerminal(stdin))
	stopTicks()
	ticks.Wait()
	if !quit && ctx.Err() == nil {
		done := make(chan struct{})
		go func() { svc.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		case <-time.After(scale(consoleDrain)):
			fmt.Fprintf(stdout, "(console) stopped waiting for running work after %s\n", scale(consoleDrain))
		}
	}
	svc.Stop()
	svc.Wait()
	return runErr
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
