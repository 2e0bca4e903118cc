package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/syncbuf"
	"github.com/soc/isolate-bot/store"
)

const wait = 10 * time.Second

// fakeService is a function-field fake of Service.
type fakeService struct {
	command func(ctx context.Context, inv commands.Invocation) error
	click   func(ctx context.Context, c commands.Click) error
}

func (f *fakeService) Command(ctx context.Context, inv commands.Invocation) error {
	if f.command == nil {
		return nil
	}
	return f.command(ctx, inv)
}

func (f *fakeService) Click(ctx context.Context, c commands.Click) error {
	if f.click == nil {
		return nil
	}
	return f.click(ctx, c)
}

// dedupFunc adapts a function to Deduper.
type dedupFunc func(ctx context.Context, key string, ttl time.Duration) (bool, error)

func (f dedupFunc) FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return f(ctx, key, ttl)
}

// testMetrics records what the Runner reports.
type testMetrics struct {
	mu         sync.Mutex
	acks       []time.Duration
	reconnects int
	outcomes   map[string]int // "name outcome" → count
}

func (m *testMetrics) ObserveAck(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks = append(m.acks, d)
}

func (m *testMetrics) Reconnect() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconnects++
}

func (m *testMetrics) Command(name, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.outcomes == nil {
		m.outcomes = map[string]int{}
	}
	m.outcomes[name+" "+outcome]++
}

func (m *testMetrics) outcome(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outcomes[key]
}

type harness struct {
	fs      *fakeslack.Server
	api     *slack.Client
	runner  *Runner
	metrics *testMetrics
	logs    *syncbuf.Buffer
	cancel  context.CancelFunc
	done    chan error
}

func newAPI(fs *fakeslack.Server) *slack.Client {
	return slack.New(fs.BotToken(), slack.OptionAppLevelToken(fs.AppToken()), slack.OptionAPIURL(fs.APIURL()))
}

// startRunner runs a Runner against fs until the test ends; Run's error is
// checked on cleanup.
func startRunner(t *testing.T, fs *fakeslack.Server, cfg Config, svc Service, dd Deduper) *harness {
	t.Helper()
	if dd == nil {
		dd = store.NewMemoryApprovals(storeConfig())
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 5 * time.Second
	}
	cfg = complete(cfg)
	h := &harness{fs: fs, api: newAPI(fs), metrics: &testMetrics{}, logs: &syncbuf.Buffer{}, done: make(chan error, 1)}
	h.runner = New(cfg, svc, h.api, dd, zerolog.New(h.logs), h.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.runner.Run(ctx) }()
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run returned %v", err)
		}
		for _, secret := range []string{fs.BotToken(), fs.AppToken()} {
			if strings.Contains(h.logs.String(), secret) {
				t.Errorf("a token appears in the logs")
			}
		}
	})
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "Runner reports connected", h.runner.Connected)
	return h
}

// stop cancels Run and returns its result (once; later calls return nil).
func (h *harness) stop() error {
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok {
			close(h.done)
		}
		return err
	case <-time.After(wait):
		return errors.New("Run did not return after its context ended")
	}
}

// waitUntil polls cond with a deadline (for state without a notification).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ackText(t testing.TB, a fakeslack.Ack) string {
	t.Helper()
	if len(a.Payload) == 0 {
		return ""
	}
	var p struct{ Text string }
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		t.Fatalf("ack payload %s: %v", a.Payload, err)
	}
	return p.Text
}

// postCard puts a bot message with the card's buttons in channel, so the
// fake can click it.
func postCard(t testing.TB, api *slack.Client, channel, requestID string) string {
	t.Helper()
	c := testCard(store.Pending, func(r *store.Request) { r.ID = requestID })
	ts, err := NewSlack(api, zerolog.Nop()).PostCard(context.Background(), channel, c)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestRunnerAcksEveryEnvelope: slash commands, clicks, unknown actions and
// events are all acked; slash commands with the "working" payload, clicks
// without payload; the service sees exactly the known deliveries, with the
// fields Slack sent.
func TestRunnerAcksEveryEnvelope(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	var mu sync.Mutex
	var invs []commands.Invocation
	var clicks []commands.Click
	done := make(chan struct{}, 100)
	svc := &fakeService{
		command: func(_ context.Context, inv commands.Invocation) error {
			mu.Lock()
			invs = append(invs, inv)
			mu.Unlock()
			done <- struct{}{}
			return nil
		},
		click: func(_ context.Context, c commands.Click) error {
			mu.Lock()
			clicks = append(clicks, c)
			mu.Unlock()
			done <- struct{}{}
			return nil
		},
	}
	h := startRunner(t, fs, Config{}, svc, nil)
	ts := postCard(t, h.api, "C1", "r-1&2")

	var envs []fakeslack.Envelope
	for i := range 20 {
		envs = append(envs, fs.SlashCommand("U1", "C1", "/isolate", fmt.Sprintf("host-%d full test", i)))
	}
	approve := fs.Click("U2", "C1", ts, ActionApprove, "req:r-1&amp;2", "r-1&amp;2")
	deny := fs.Click("U3", "C1", ts, ActionDeny, "req:r-1&amp;2", "r-1&amp;2")
	unknown := fs.Click("U3", "C1", ts, "something_else", "other", "x")
	event := fs.SendEnvelope("events_api", json.RawMessage(`{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention","user":"U1","text":"hi","ts":"1.1","channel":"C1","event_ts":"1.1"}}`), false)
	envs = append(envs, approve, deny, unknown, event)

	for _, e := range envs {
		a, err := fs.WaitAck(e.ID, wait)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if e.Type == "slash_commands" {
			want = msgWorking
		}
		if got := ackText(t, a); got != want {
			t.Errorf("%s ack text = %q, want %q", e.Type, got, want)
		}
	}
	for range 22 {
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatal("service did not see every delivery")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(invs) != 20 || len(clicks) != 2 {
		t.Fatalf("service saw %d commands and %d clicks, want 20 and 2", len(invs), len(clicks))
	}
	inv := invs[0]
	if inv.Command != "/isolate" || inv.User != "U1" || inv.Channel != "C1" || inv.TriggerID == "" ||
		inv.DeliveryID == "" || !strings.HasSuffix(inv.Text, "full test") {
		t.Errorf("invocation = %+v", inv)
	}
	byUser := map[string]commands.Click{}
	for _, c := range clicks {
		byUser[c.User] = c
	}
	if c := byUser["U2"]; c.Action != commands.ButtonApprove || c.RequestID != "r-1&2" || c.Channel != "C1" || c.MessageTS != ts || c.TriggerID == "" {
		t.Errorf("approve click = %+v (button value must be unescaped)", c)
	}
	if c := byUser["U3"]; c.Action != commands.ButtonDeny || c.RequestID != "r-1&2" {
		t.Errorf("deny click = %+v", c)
	}
	// The latency is observed just after the ack is written, so Slack may
	// hold the last ack a moment before the metric counts it.
	waitUntil(t, "every ack's latency observed", func() bool {
		h.metrics.mu.Lock()
		defer h.metrics.mu.Unlock()
		return len(h.metrics.acks) == len(envs)
	})
	if !strings.Contains(h.logs.String(), "ignoring unknown action") {
		t.Error("unknown action id was not logged")
	}
}

// TestRunnerPoolBound: with 2 workers and a queue of 3, 2 commands run, 3
// wait and the rest are refused at once with "busy" in the ack; never more
// than 2 run concurrently. A click meanwhile takes its own lane and runs.
func TestRunnerPoolBound(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	release := make(chan struct{})
	started := make(chan string, 100)
	var running, peak atomic.Int32
	clicked := make(chan string, 1)
	svc := &fakeService{click: func(_ context.Context, c commands.Click) error {
		clicked <- c.RequestID
		return nil
	}, command: func(_ context.Context, inv commands.Invocation) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started <- inv.Text
		<-release
		running.Add(-1)
		return nil
	}}
	h := startRunner(t, fs, Config{Workers: 2, Queue: 3}, svc, nil)
	ts := postCard(t, h.api, "C1", "r-9")

	first := []fakeslack.Envelope{fs.SlashCommand("U1", "C1", "/isolate", "a"), fs.SlashCommand("U1", "C1", "/isolate", "b")}
	for range 2 {
		select {
		case <-started:
		case <-time.After(wait):
			t.Fatal("first two commands did not start")
		}
	}
	var rest []fakeslack.Envelope
	for i := range 8 {
		rest = append(rest, fs.SlashCommand("U1", "C1", "/isolate", fmt.Sprint("q", i)))
	}
	click := fs.Click("U5", "C1", ts, ActionApprove, "req:r-9", "r-9")
	busy := 0
	for i, e := range append(first, rest...) {
		a, err := fs.WaitAck(e.ID, wait)
		if err != nil {
			t.Fatal(err)
		}
		switch got := ackText(t, a); {
		case got == msgBusy:
			busy++
			if i < 5 {
				t.Errorf("command %d refused as busy although the queue had room", i)
			}
		case got != msgWorking:
			t.Errorf("ack %d text %q", i, got)
		}
	}
	if busy != 5 {
		t.Errorf("%d commands refused as busy, want 5", busy)
	}
	if _, err := fs.WaitAck(click.ID, wait); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-clicked:
		if id != "r-9" {
			t.Errorf("clicked %q", id)
		}
	case <-time.After(wait):
		t.Error("a click waited behind the full command queue")
	}
	close(release)
	for range 3 {
		select {
		case <-started:
		case <-time.After(wait):
			t.Fatal("queued commands did not run after workers freed up")
		}
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
	if n := h.metrics.outcome("/isolate busy"); n != 5 {
		t.Errorf("busy outcome counted %d times, want 5", n)
	}
}

// TestRunnerRedeliveryHandledOnce: when the ack is late, Slack redelivers
// the same envelope; the service still sees it once. A second envelope with
// the same slash command trigger id is also ignored.
func TestRunnerRedeliveryHandledOnce(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{RedeliveryTimeout: 200 * time.Millisecond})
	var calls atomic.Int32
	handled := make(chan struct{}, 10)
	svc := &fakeService{command: func(context.Context, commands.Invocation) error {
		calls.Add(1)
		handled <- struct{}{}
		return nil
	}}
	// The clock is read on the event loop before the ack: holding it stalls
	// the loop, which is how a slow ack looks to Slack.
	gate := make(chan struct{})
	var stalled atomic.Bool
	cfg := Config{Now: func() time.Time {
		if stalled.CompareAndSwap(false, true) {
			<-gate
		}
		return time.Now()
	}}
	h := startRunner(t, fs, cfg, svc, nil)
	e := fs.SlashCommand("U1", "C1", "/isolate", "host-1 full x")
	if _, err := fs.WaitDeliveries(e.ID, 2, wait); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitUntil(t, "both deliveries acked", func() bool {
		n := 0
		for _, a := range fs.Acks() {
			if a.EnvelopeID == e.ID {
				n++
			}
		}
		return n == 2
	})
	// Same trigger id, new envelope id: a replayed slash command.
	again := fs.SendEnvelope("slash_commands", e.Payload, true)
	if _, err := fs.WaitAck(again.ID, wait); err != nil {
		t.Fatal(err)
	}
	<-handled
	waitUntil(t, "duplicates counted", func() bool { return h.metrics.outcome("/isolate duplicate") == 2 })
	if n := calls.Load(); n != 1 {
		t.Errorf("service called %d times for one command, want 1", n)
	}
}

// TestRunnerReconnects: after a Slack "disconnect" and after a dropped
// connection the Runner reconnects, counts it, and still serves.
func TestRunnerReconnects(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{DisconnectGrace: 100 * time.Millisecond})
	handled := make(chan string, 10)
	svc := &fakeService{command: func(_ context.Context, inv commands.Invocation) error {
		handled <- inv.Text
		return nil
	}}
	h := startRunner(t, fs, Config{PingInterval: time.Second}, svc, nil)

	fs.Disconnect("refresh_requested")
	if err := fs.WaitConnectionsOpened(2, wait); err != nil {
		t.Fatal(err)
	}
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	fs.DropConnections()
	if err := fs.WaitConnectionsOpened(3, wait); err != nil {
		t.Fatal(err)
	}
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "connected again", h.runner.Connected)
	e := fs.SlashCommand("U1", "C1", "/isolate", "after reconnect")
	if _, err := fs.WaitAck(e.ID, wait); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-handled:
		if got != "after reconnect" {
			t.Errorf("handled %q", got)
		}
	case <-time.After(wait):
		t.Fatal("command after reconnect not handled")
	}
	waitUntil(t, "2 reconnects counted", func() bool {
		h.metrics.mu.Lock()
		defer h.metrics.mu.Unlock()
		return h.metrics.reconnects == 2
	})
}

// TestRunnerFailsClosedWithoutStore: when de-duplication cannot reach the
// store, the service is not called and the user is told.
func TestRunnerFailsClosedWithoutStore(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	var calls atomic.Int32
	svc := &fakeService{command: func(context.Context, commands.Invocation) error { calls.Add(1); return nil }}
	down := dedupFunc(func(context.Context, string, time.Duration) (bool, error) {
		return false, fmt.Errorf("dial redis: %w", store.ErrUnavailable)
	})
	h := startRunner(t, fs, Config{}, svc, down)
	e := fs.SlashCommand("U7", "C1", "/isolate", "host-1 full x")
	if _, err := fs.WaitAck(e.ID, wait); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.WaitEphemeral("U7", func(es []fakeslack.Ephemeral) bool {
		for _, e := range es {
			if strings.Contains(e.Text, "state store is unavailable") {
				return true
			}
		}
		return false
	}, wait); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 0 || h.metrics.outcome("/isolate store_unavailable") != 1 {
		t.Errorf("service calls %d, store_unavailable outcomes %d; want 0 and 1", calls.Load(), h.metrics.outcome("/isolate store_unavailable"))
	}
}

// TestRunnerCommandTimeout: a delivery that overruns CommandTimeout is
// cancelled and the user is told.
func TestRunnerCommandTimeout(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	svc := &fakeService{command: func(ctx context.Context, _ commands.Invocation) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	h := startRunner(t, fs, Config{CommandTimeout: 100 * time.Millisecond}, svc, nil)
	fs.SlashCommand("U8", "C1", "/isolate", "slow")
	if _, err := fs.WaitEphemeral("U8", func(es []fakeslack.Ephemeral) bool {
		for _, e := range es {
			if strings.Contains(e.Text, "took too long") {
				return true
			}
		}
		return false
	}, wait); err != nil {
		t.Fatal(err)
	}
	if n := h.metrics.outcome("/isolate timeout"); n != 1 {
		t.Errorf("timeout outcomes %d, want 1", n)
	}
}

// TestRunnerShutdown: on ctx end Run waits for running work to finish; work
// that outlives DrainTimeout is cancelled and Run says so.
func TestRunnerShutdown(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		fs := fakeslack.New(t, fakeslack.Options{})
		started, release := make(chan struct{}), make(chan struct{})
		var finished atomic.Bool
		svc := &fakeService{command: func(context.Context, commands.Invocation) error {
			close(started)
			<-release
			finished.Store(true)
			return nil
		}}
		h := startRunner(t, fs, Config{DrainTimeout: 5 * time.Second}, svc, nil)
		fs.SlashCommand("U1", "C1", "/isolate", "x")
		<-started
		h.cancel()
		select {
		case <-h.done:
			t.Fatal("Run returned while a delivery was still running")
		case <-time.After(200 * time.Millisecond): // Run must still be draining
		}
		close(release)
		if err := h.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !finished.Load() {
			t.Error("Run returned before the running delivery finished")
		}
		if h.runner.Connected() {
			t.Error("still reports connected after Run returned")
		}
	})
	t.Run("bounded", func(t *testing.T) {
		fs := fakeslack.New(t, fakeslack.Options{})
		started := make(chan struct{})
		cancelled := make(chan struct{})
		svc := &fakeService{command: func(ctx context.Context, _ commands.Invocation) error {
			close(started)
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		}}
		h := startRunner(t, fs, Config{DrainTimeout: 100 * time.Millisecond}, svc, nil)
		fs.SlashCommand("U1", "C1", "/isolate", "x")
		<-started
		begin := time.Now()
		h.cancel()
		err := <-h.done
		close(h.done)
		if err == nil || !strings.Contains(err.Error(), "drain") {
			t.Errorf("Run = %v, want a drain timeout error", err)
		}
		if d := time.Since(begin); d > 3*time.Second {
			t.Errorf("shutdown took %s with a 100ms drain bound", d)
		}
		select {
		case <-cancelled:
		default:
			t.Error("the running delivery's context was not cancelled")
		}
	})
}

// TestRunnerBadToken: Slack refusing the app token ends Run with an error
// that names what to fix and does not contain the token.
func TestRunnerBadToken(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	api := slack.New(fs.BotToken(), slack.OptionAppLevelToken("xapp-wrong-secret"), slack.OptionAPIURL(fs.APIURL()))
	r := New(complete(Config{}), &fakeService{}, api, store.NewMemoryApprovals(storeConfig()), zerolog.Nop(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := r.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v, want an auth error before the deadline", err)
	}
	if !strings.Contains(err.Error(), "SLACK_APP_TOKEN") || strings.Contains(err.Error(), "xapp-wrong-secret") {
		t.Errorf("error %q should name the token variable and not contain the token", err)
	}
}

// TestRunnerAcksUndecodableEnvelope: an envelope slack-go cannot decode is
// still acked by its envelope_id (else Slack redelivers it), and handled
// by nobody.
func TestRunnerAcksUndecodableEnvelope(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	called := make(chan struct{}, 1)
	svc := &fakeService{command: func(context.Context, commands.Invocation) error { called <- struct{}{}; return nil }}
	startRunner(t, fs, Config{}, svc, nil)
	bad := fs.SendEnvelope("slash_commands", json.RawMessage(`"not an object"`), true)
	if _, err := fs.WaitAck(bad.ID, wait); err != nil {
		t.Fatalf("undecodable envelope not acked: %v", err)
	}
	good := fs.SlashCommand("U1", "C1", "/isolate", "after the bad one")
	if _, err := fs.WaitAck(good.ID, wait); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(wait):
		t.Fatal("the next command was not handled")
	}
	select {
	case <-called:
		t.Fatal("the undecodable envelope reached the service")
	default:
	}
}

// TestRunnerWarnsOnRepeatedReconnects: Slack's routine refresh is logged
// at info; three reconnects within the window become a warning.
func TestRunnerWarnsOnRepeatedReconnects(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{DisconnectGrace: 100 * time.Millisecond})
	h := startRunner(t, fs, Config{PingInterval: time.Second}, &fakeService{}, nil)
	for i := 2; i <= 4; i++ {
		fs.DropConnections()
		if err := fs.WaitConnectionsOpened(i, wait); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "connected again", h.runner.Connected)
		warned := strings.Contains(h.logs.String(), "Slack keeps reconnecting")
		if want := i-1 >= reconnectWarnAt; warned != want {
			waitUntil(t, "reconnect logged", func() bool { return strings.Contains(h.logs.String(), "Slack keeps reconnecting") == want })
		}
	}
	h.metrics.mu.Lock()
	defer h.metrics.mu.Unlock()
	if h.metrics.reconnects != 3 {
		t.Errorf("reconnects counted %d, want 3", h.metrics.reconnects)
	}
}

// TestRunnerClickDuringFlood: an Approve clicked while 2,000 slash commands
// flood the Runner (each taking 200 ms, like a refusal that writes the
// audit log) reaches the service within 3 s: clicks have their own lane.
func TestRunnerClickDuringFlood(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	type handled struct {
		at       time.Time
		commands int64 // commands finished before the click ran
	}
	clicked := make(chan handled, 1)
	var done atomic.Int64
	svc := &fakeService{
		command: func(ctx context.Context, _ commands.Invocation) error {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
			done.Add(1)
			return nil
		},
		click: func(context.Context, commands.Click) error {
			clicked <- handled{time.Now(), done.Load()}
			return nil
		},
	}
	h := startRunner(t, fs, Config{}, svc, nil)
	ts := postCard(t, h.api, "C1", "r-1")
	var last fakeslack.Envelope
	var sent time.Time
	var doneAtClick int64
	for i := range 2000 {
		last = fs.SlashCommand("U9", "C1", "/isolate", fmt.Sprint("flood-", i))
		if i == 1000 {
			sent, doneAtClick = time.Now(), done.Load()
			fs.Click("U2", "C1", ts, ActionApprove, "req:r-1", "r-1")
		}
	}
	select {
	case c := <-clicked:
		// Sharing the commands' queue, the click would wait for the
		// commands ahead of it (the queue holds 256, 3.2 s of work for 16
		// workers). Its own lane runs it at once: few commands finish
		// between its arrival and its handling, whatever the machine's load.
		if waited := c.commands - doneAtClick; waited > 64 {
			t.Errorf("%d commands finished between the click and its handling; it waited in their queue", waited)
		}
		t.Logf("click handled %s after it was sent, during a flood of 2,000 commands", c.at.Sub(sent).Round(time.Millisecond))
	case <-time.After(wait):
		t.Fatal("the click never reached the service during the flood")
	}
	if _, err := fs.WaitAck(last.ID, wait); err != nil {
		t.Fatal(err)
	}
}
