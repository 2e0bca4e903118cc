package app

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/console"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/store"
)

const consoleChannel = "C0CONSOLE"

func consoleConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.LoadConsole(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.PollInterval, cfg.SchedulerEvery = 5*time.Millisecond, time.Millisecond
	return cfg
}

func consoleOptions() Options {
	con := console.New(io.Discard, consoleChannel, []console.Identity{{ID: config.ConsoleAnalyst}, {ID: config.ConsoleManager}})
	return Options{Log: zerolog.Nop(), Console: &Console{Messenger: con, Directory: con}, SimSpeed: 1000}
}

// TestConsoleRefusesSharedState: the console with the simulator refuses to
// start on a shared Redis under the default prefix, and says why, before
// it connects; a prefix of its own, in-memory state or the real MDE API
// start.
func TestConsoleRefusesSharedState(t *testing.T) {
	rs := redistest.Start(t)
	url := "redis://" + rs.Addr + "/0"
	tests := []struct {
		name    string
		env     map[string]string
		refused bool
	}{
		{"shared Redis, default prefix", map[string]string{"REDIS_URL": url}, true},
		{"shared Redis, default prefix spelled out", map[string]string{"REDIS_URL": url, "REDIS_PREFIX": config.DefaultRedisPrefix}, true},
		{"shared Redis, own prefix", map[string]string{"REDIS_URL": url, "REDIS_PREFIX": "console-try"}, false},
		{"in memory", map[string]string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(consoleConfig(t, tt.env), consoleOptions())
			if a != nil {
				t.Cleanup(func() { _ = a.Close() })
			}
			if got := errors.Is(err, ErrConsoleSharesState); got != tt.refused {
				t.Fatalf("New: %v; refused %v, want %v", err, got, tt.refused)
			}
			if tt.refused && (a != nil || !strings.Contains(err.Error(), "REDIS_PREFIX") || !strings.Contains(err.Error(), "REDIS_URL")) {
				t.Fatalf("refusal %q does not say what to set", err)
			}
			if !tt.refused && err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConsoleNeverTakesOverRequests: a console on a shared Redis (its own
// prefix, which the bots of that prefix also use) runs no scheduler: an
// approved request nobody claimed and a stranded executing one stay as
// they are, while the console's own request is approved, sent to the
// simulator and followed to its end, its decision marked "via console".
func TestConsoleNeverTakesOverRequests(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t)
	const prefix = "shared-with-console"
	rdb := rs.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	bots := store.NewApprovals(rdb, store.ApprovalsConfig{Prefix: prefix, Retention: config.DefaultAuditRetention, AuditMaxLen: config.DefaultAuditMaxLen})
	stranded := map[string]store.Request{}
	for machine, path := range map[string][]store.State{defender.SimWeb02: {store.Approved}, defender.SimDB01: {store.Approved, store.Executing}} {
		r, err := bots.Create(ctx, store.Request{Command: store.Isolate, MachineID: machine, IsolationType: "Full", Requester: "U0REAL",
			Channel: "C0PROD", MessageTS: "1.1", ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		from := store.Pending
		for _, to := range path {
			if r, err = bots.Transition(ctx, r.ID, from, store.Change{To: to, By: "U0BOSS", CheckAt: time.Now().Add(-time.Minute)}); err != nil {
				t.Fatal(err)
			}
			from = to
		}
		stranded[r.ID] = r
	}

	cfg := consoleConfig(t, map[string]string{"REDIS_URL": "redis://" + rs.Addr + "/0", "REDIS_PREFIX": prefix})
	a, err := New(cfg, consoleOptions())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	})

	svc := a.Service()
	if err := svc.Command(ctx, commands.Invocation{Command: "/isolate", Text: "web-01.contoso.local full try-out", User: config.ConsoleAnalyst, Channel: consoleChannel}); err != nil {
		t.Fatal(err)
	}
	own, err := bots.ForMachine(ctx, defender.SimWeb01)
	if err != nil || own.State != store.Pending {
		t.Fatalf("console request %+v, %v", own, err)
	}
	if err := svc.Click(ctx, commands.Click{RequestID: own.ID, User: config.ConsoleManager, Channel: own.Channel, MessageTS: own.MessageTS, Action: commands.ButtonApprove}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for own, _ = bots.Get(ctx, own.ID); own.State != store.Done; own, _ = bots.Get(ctx, own.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("console request ended as %+v", own)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, bounded by the deadline
	}
	h, err := bots.History(ctx, own.ID)
	if err != nil {
		t.Fatal(err)
	}
	approvedVia := ""
	for _, e := range h {
		if e.Type == store.EventApproved {
			approvedVia = e.Reason
		}
	}
	if approvedVia != "via console" {
		t.Fatalf("approval audited as %q; want via console (history %+v)", approvedVia, h)
	}
	// The console ran for as long as its own request took: a scheduler
	// would have claimed both requests on its first pass.
	for id, before := range stranded {
		got, err := bots.Get(ctx, id)
		if err != nil || got.Version != before.Version || got.State != before.State {
			t.Errorf("request %s was touched by the console: %+v → %+v (%v)", id, before, got, err)
		}
		if acts, _ := a.Simulator().MachineActions(ctx, got.MachineID); len(acts) != 0 {
			t.Errorf("the console sent %s's request to its simulator: %+v", id, acts)
		}
	}
}
