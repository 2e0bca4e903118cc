package app

import (
	"context"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/internal/syncbuf"
)

const wait = 10 * time.Second

func TestShutdownSteps(t *testing.T) {
	// The order is the documented one; changing it is a design decision.
	want := []string{stepIntake, stepInFlight, stepBackground, stepHTTP, stepRedis}
	sum := 0.0
	for i, s := range shutdownSteps {
		if i >= len(want) || s.name != want[i] {
			t.Errorf("step %d is %q, want %q", i, s.name, want[min(i, len(want)-1)])
		}
		if s.share < 0 {
			t.Errorf("step %q has a negative share", s.name)
		}
		sum += s.share
	}
	if len(shutdownSteps) != len(want) || sum < 0.999 || sum > 1.001 {
		t.Errorf("%d steps with shares summing to %g; want %d summing to 1", len(shutdownSteps), sum, len(want))
	}
	a := &App{cfg: config.Config{ShutdownTimeout: 10 * time.Second}}
	for _, c := range []struct {
		step string
		want time.Duration
	}{
		{stepIntake, 0},
		{stepInFlight, 5 * time.Second},
		{stepBackground, 3 * time.Second},
		{stepHTTP, 2 * time.Second},
	} {
		if got := a.budget(c.step); got != c.want {
			t.Errorf("budget(%q) = %s, want %s", c.step, got, c.want)
		}
	}
}

// world is fake Slack, fake MDE and Azure AD, and a real Redis.
type world struct {
	fs   *fakeslack.Server
	mde  *fakemde.Server
	rs   *redistest.Server
	logs *syncbuf.Buffer
	// fixed, when set, changes the fixed values (no variable) of every
	// app the world runs: scaled-down polling for outbreak runs.
	fixed func(*config.Fixed)
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{fs: fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}}), mde: fakemde.New(t, nil),
		rs: redistest.Start(t), logs: &syncbuf.Buffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", w.logs)
		}
	})
	return w
}

func (w *world) config(t testing.TB, extra map[string]string) config.Config {
	t.Helper()
	env := map[string]string{
		"SLACK_APP_TOKEN": w.fs.AppToken(), "SLACK_BOT_TOKEN": w.fs.BotToken(), "SLACK_API_URL": w.fs.APIURL(),
		"AZURE_TENANT_ID": fakemde.TenantID, "AZURE_CLIENT_ID": fakemde.ClientID, "AZURE_CLIENT_SECRET": fakemde.ClientSecret,
		"AZURE_AUTHORITY_HOST": w.mde.URL(), "DEFENDER_API_URL": w.mde.URL(),
		"REDIS_URL": "redis://" + w.rs.Addr + "/0", "REDIS_PREFIX": strings.ToLower(t.Name()),
		"ALLOWED_USER_IDS": "U0ALICE", "APPROVER_USER_IDS": "U0BOB", "HTTP_ADDR": "127.0.0.1:0",
		"SHUTDOWN_TIMEOUT": "10s",
	}
	maps.Copy(env, extra)
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if w.fixed != nil {
		w.fixed(&cfg.Fixed)
	}
	return cfg
}

// running builds an App from w's configuration, runs it, and returns once
// Slack has its Socket Mode connection: cancel stops it, done gives Run's
// error.
func (w *world) running(t testing.TB, env map[string]string) (*App, context.Context, context.CancelFunc, <-chan error) {
	t.Helper()
	a, ctx, cancel, done := w.start(t, env)
	if err := w.fs.WaitConnections(1, wait); err != nil {
		cancel()
		t.Fatal(err)
	}
	return a, ctx, cancel, done
}

// runReturned waits (up to wait) for Run's result on done and fails t
// unless Run returned nil.
func runReturned(t testing.TB, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
}

// start builds an App from w's configuration and runs it: one replica.
func (w *world) start(t testing.TB, env map[string]string) (*App, context.Context, context.CancelFunc, <-chan error) {
	t.Helper()
	a, err := New(w.config(t, env), w.options())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, ctx, cancel, done
}

func (w *world) options() Options {
	return Options{Log: zerolog.New(w.logs), MDEHTTPClient: w.mde.HTTPClient()}
}

func healthy(addr string) bool {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestRunStopsInOrder stops the app while a delivery waits for MDE: Slack
// intake closes at once, /healthz still answers while the delivery
// finishes, the delivery's reply reaches Slack before Run returns, and the
// HTTP server is gone afterwards.
func TestRunStopsInOrder(t *testing.T) {
	w := newWorld(t)
	a, _, cancel, done := w.running(t, nil)
	defer cancel()
	if !healthy(a.Addr()) {
		t.Fatal("/healthz does not answer while running")
	}

	// The machine look-up hangs 1.5 s: the command is in flight meanwhile.
	w.mde.Hang(fakemde.OpMachines, 1500*time.Millisecond)
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "no-such-host.example full x")
	if err := w.mde.WaitCount(fakemde.OpMachines, 1, wait); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := w.fs.WaitConnections(0, wait); err != nil {
		t.Fatalf("Socket Mode still connected after the stop: %v", err)
	}
	if !healthy(a.Addr()) {
		t.Error("/healthz stopped answering before in-flight work finished")
	}
	runReturned(t, done)
	if n := len(w.fs.Ephemerals("U0ALICE")); n == 0 {
		t.Error("the in-flight command's reply was not delivered before Run returned")
	}
	if healthy(a.Addr()) {
		t.Error("/healthz still answers after Run returned")
	}
}

// TestRunFailsWhenSlackRefusesToken: a failing part stops the whole app,
// Run says which part, and the port is released.
func TestRunFailsWhenSlackRefusesToken(t *testing.T) {
	w := newWorld(t)
	a, err := New(w.config(t, map[string]string{"SLACK_APP_TOKEN": "xapp-wrong"}), w.options())
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "slack") {
			t.Errorf("Run = %v, want a Slack error", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after Slack refused the token")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port %s not released: %v", addr, err)
	}
	ln.Close()
}

// TestNewReleasesOnError: when Redis cannot be reached, New fails naming
// REDIS_URL and frees the port it had taken.
func TestNewReleasesOnError(t *testing.T) {
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead, httpAddr := ln.Addr().String(), ""
	ln.Close()
	if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	httpAddr = ln.Addr().String()
	ln.Close()
	_, err = New(w.config(t, map[string]string{"REDIS_URL": "redis://" + dead + "/0", "HTTP_ADDR": httpAddr}), w.options())
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("New = %v, want an error naming REDIS_URL", err)
	}
	if ln, err = net.Listen("tcp", httpAddr); err != nil {
		t.Fatalf("New kept HTTP_ADDR %s after failing: %v", httpAddr, err)
	}
	ln.Close()
}

// TestFinishBackgroundStopsScheduler: FinishBackground ends the running
// scheduler loop for good (Run's start-up cannot restart it), and Run still
// shuts down cleanly afterwards.
func TestFinishBackgroundStopsScheduler(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t, map[string]string{"DEFENDER_SIMULATE": "true"})
	cfg.SchedulerEvery = 20 * time.Millisecond
	a, err := New(cfg, w.options())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if err := w.fs.WaitConnections(1, wait); err != nil { // Run started the scheduler before Slack
		t.Fatal(err)
	}
	a.mu.Lock()
	loop := a.schedDone
	a.mu.Unlock()
	if loop == nil {
		t.Fatal("Run started no scheduler")
	}
	fctx, fcancel := context.WithTimeout(context.Background(), wait)
	defer fcancel()
	if err := a.FinishBackground(fctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-loop:
	default:
		t.Error("scheduler loop still running after FinishBackground")
	}
	a.startScheduler(context.Background())
	a.mu.Lock()
	again := a.schedDone
	a.mu.Unlock()
	if again != loop {
		t.Error("scheduler restarted after FinishBackground")
	}
	cancel()
	runReturned(t, done)
}

// TestCloseWithoutRun: an App that never ran gives back its port on Close.
func TestCloseWithoutRun(t *testing.T) {
	w := newWorld(t)
	a, err := New(w.config(t, nil), w.options())
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port %s not released by Close: %v", addr, err)
	}
	ln.Close()
}

// waitCard waits for the request card (the message with an Approve button).
func waitCard(t testing.TB, w *world) fakeslack.Message {
	t.Helper()
	var card fakeslack.Message
	if _, err := w.fs.WaitMessages("C1", func(ms []fakeslack.Message) bool {
		for _, m := range ms {
			if _, ok := m.Button(bot.ActionApprove); ok {
				card = m
				return true
			}
		}
		return false
	}, wait); err != nil {
		t.Fatal(err)
	}
	return card
}
