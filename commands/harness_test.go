package commands

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Users of the test workspace.
const (
	analyst  = "UANALYST"
	analyst2 = "UANALYST2" // allowed through the user group
	boss     = "UBOSS"
	boss2    = "UBOSS2"
	stranger = "USTRANGER"
	socGroup = "S0SOC"
	channel  = "CSOC"
)

// clock is a settable test clock shared by the simulator, the store and the
// Service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recMessenger is the transport fake: it records everything sent.
type recMessenger struct {
	mu         sync.Mutex
	ephemerals []sent
	cards      []Card
	updates    []Card
	replies    []sent
	ts         int
	postErr    error
	// afterPost runs once the card is "in Slack" but before PostCard
	// returns: what a fast approver on another replica can do.
	afterPost func(ts string, c Card)
}

type sent struct {
	Channel, User, Thread string
	M                     Message
}

func (r *recMessenger) Ephemeral(_ context.Context, ch, user string, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ephemerals = append(r.ephemerals, sent{Channel: ch, User: user, M: m})
	return nil
}

func (r *recMessenger) PostCard(_ context.Context, ch string, c Card) (string, error) {
	r.mu.Lock()
	if r.postErr != nil {
		r.mu.Unlock()
		return "", r.postErr
	}
	r.ts++
	r.cards = append(r.cards, c)
	ts, hook := fmt.Sprintf("1764406800.%06d", r.ts), r.afterPost
	r.mu.Unlock()
	if hook != nil {
		hook(ts, c)
	}
	return ts, nil
}

func (r *recMessenger) UpdateCard(_ context.Context, ch, ts string, c Card) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, c)
	return nil
}

func (r *recMessenger) Reply(_ context.Context, ch, ts string, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replies = append(r.replies, sent{Channel: ch, Thread: ts, M: m})
	return nil
}

// text flattens a message for assertions.
func text(m Message) string {
	var b strings.Builder
	for _, s := range m.Spans {
		switch s.Kind {
		case User:
			b.WriteString("@" + s.Text)
		case Thread:
			b.WriteString("<thread " + s.TS + "|" + s.Text + ">")
		default:
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

func (r *recMessenger) lastEphemeral(t *testing.T, user string) Message {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.ephemerals) - 1; i >= 0; i-- {
		if r.ephemerals[i].User == user {
			return r.ephemerals[i].M
		}
	}
	t.Fatalf("no ephemeral message to %s", user)
	return Message{}
}

func (r *recMessenger) replyTexts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.replies {
		out = append(out, text(s.M))
	}
	return out
}

func (r *recMessenger) hasReply(sub string) bool {
	for _, s := range r.replyTexts() {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func (r *recMessenger) cardCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cards)
}

// fakeDir resolves user groups; err makes every lookup fail.
type fakeDir struct {
	groups map[string][]string
	err    error
	calls  atomic.Int32
}

func (d *fakeDir) GroupMembers(_ context.Context, g string) ([]string, error) {
	d.calls.Add(1)
	if d.err != nil {
		return nil, d.err
	}
	return d.groups[g], nil
}

// recDefender wraps the simulator: it counts POSTs and lets a test replace
// the outcome of the n-th POST (n from 1).
type recDefender struct {
	*defender.Simulator
	posts    atomic.Int32
	mu       sync.Mutex
	comments []string
	onPost   func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error)
	lookErr  error // returned by Machine and FindMachinesByName when set
}

func (d *recDefender) Machine(ctx context.Context, id string) (defender.Machine, error) {
	if d.lookErr != nil {
		return defender.Machine{}, d.lookErr
	}
	return d.Simulator.Machine(ctx, id)
}

func (d *recDefender) FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error) {
	if d.lookErr != nil {
		return nil, d.lookErr
	}
	return d.Simulator.FindMachinesByName(ctx, name)
}

func (d *recDefender) post(comment string, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
	n := int(d.posts.Add(1))
	d.mu.Lock()
	d.comments = append(d.comments, comment)
	hook := d.onPost
	d.mu.Unlock()
	if hook != nil {
		return hook(n, real)
	}
	return real()
}

func (d *recDefender) Isolate(ctx context.Context, slot defender.Slot, id string, t defender.IsolationType, c string) (defender.MachineAction, error) {
	return d.post(c, func() (defender.MachineAction, error) { return d.Simulator.Isolate(ctx, slot, id, t, c) })
}

func (d *recDefender) Unisolate(ctx context.Context, slot defender.Slot, id, c string) (defender.MachineAction, error) {
	return d.post(c, func() (defender.MachineAction, error) { return d.Simulator.Unisolate(ctx, slot, id, c) })
}

// simActions counts the Isolate/Unisolate actions MDE (the simulator) holds
// for a machine: the ground truth of "called MDE exactly once".
func simActions(t *testing.T, sim *defender.Simulator, machineID string) []defender.MachineAction {
	t.Helper()
	acts, err := sim.MachineActions(context.Background(), machineID)
	if err != nil {
		t.Fatalf("simulator actions: %v", err)
	}
	return acts
}

type env struct {
	t     *testing.T
	clk   *clock
	sim   *defender.Simulator
	def   *recDefender
	store Approvals
	mem   *store.MemoryApprovals
	msgr  *recMessenger
	dir   *fakeDir
	gate  Gate // nil: no slot is reserved before a POST
	cfg   Config
	svc   *Service
}

func testConfig() Config {
	return Config{
		AllowedUsers:   []string{analyst, socGroup},
		Approvers:      []string{boss, boss2},
		ApprovalTTL:    time.Hour,
		CommandTimeout: 5 * time.Second,
		CallTimeout:    5 * time.Second,
		PollInterval:   5 * time.Millisecond,
		PollFor:        5 * time.Second,
		SchedulerEvery: 10 * time.Millisecond,
	}
}

// newEnv wires a Service to the simulator, the memory store and the
// recording messenger, all on one test clock.
func newEnv(t *testing.T, mod ...func(*env)) *env {
	t.Helper()
	clk := newClock()
	sim := defender.NewSimulator(clk.Now)
	mem := store.NewMemoryApprovals(store.ApprovalsConfig{Now: clk.Now})
	e := &env{
		t: t, clk: clk, sim: sim, def: &recDefender{Simulator: sim}, store: mem, mem: mem,
		msgr: &recMessenger{},
		dir:  &fakeDir{groups: map[string][]string{socGroup: {analyst2}}},
		cfg:  testConfig(),
	}
	for _, m := range mod {
		m(e)
	}
	e.svc = e.newService()
	return e
}

func (e *env) newService() *Service {
	s := New(e.cfg, Deps{
		Defender: e.def, Approvals: e.store, Gate: e.gate, Messenger: e.msgr, Directory: e.dir,
		Logger: zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel), Now: e.clk.Now, Version: "test",
	})
	e.t.Cleanup(func() { s.Stop(); s.Wait() })
	return s
}

func (e *env) command(user, cmd, text string) {
	e.t.Helper()
	if err := e.svc.Command(context.Background(), Invocation{Command: cmd, Text: text, User: user, Channel: channel, TriggerID: "trig-" + text, RequestID: "env-1"}); err != nil {
		e.t.Logf("Command returned (for logs): %v", err)
	}
}

func (e *env) click(svc *Service, id, user string, approve bool) {
	e.t.Helper()
	if err := svc.Click(context.Background(), Click{RequestID: id, User: user, Channel: channel, MessageTS: "x", Approve: approve}); err != nil {
		e.t.Logf("Click returned (for logs): %v", err)
	}
}

// request creates an isolation request for the simulator's web-01 and
// returns it.
func (e *env) request() store.Request {
	e.t.Helper()
	e.command(analyst, "/isolate", "web-01.contoso.local full suspicious beaconing")
	r, err := e.store.ForMachine(context.Background(), defender.SimWeb01)
	if err != nil || r.State != store.Pending {
		e.t.Fatalf("no pending request for web-01: %+v, %v (ephemeral: %+v)", r, err, e.msgr.ephemerals)
	}
	return r
}

func (e *env) get(id string) store.Request {
	e.t.Helper()
	r, err := e.store.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("get %s: %v", id, err)
	}
	return r
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// finish lets r run to its end: it waits until MDE accepted the request (or
// it ended without), lets the simulated action complete by advancing the
// clock, and waits for the request to end and background work to stop.
func (e *env) finish(id string) store.Request {
	e.t.Helper()
	waitFor(e.t, id+" sent or ended", func() bool { r := e.get(id); return r.MachineActionID != "" || r.State.Terminal() })
	e.clk.Advance(time.Minute)
	waitFor(e.t, id+" terminal", func() bool { return e.get(id).State.Terminal() })
	e.svc.Wait()
	return e.get(id)
}

func (e *env) history(id string) []string {
	e.t.Helper()
	evs, err := e.store.History(context.Background(), id)
	if err != nil {
		e.t.Fatalf("history %s: %v", id, err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}
