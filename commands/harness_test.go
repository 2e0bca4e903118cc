package commands

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/mock"
	"github.com/soc/isolate-bot/internal/testclock"
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

// The fakes in internal/mock implement commands' interfaces.
var (
	_ Defender  = (*mock.Defender)(nil)
	_ Approvals = (*mock.Approvals)(nil)
	_ Directory = (*mock.Directory)(nil)
	_ Throttle  = (*mock.Throttle)(nil)
	_ Messenger = (*mock.Messenger[Message, Card])(nil)
)

// postHook replaces the outcome of the n-th Isolate/Unisolate (n from 1);
// real sends it to the simulator.
type postHook func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error)

// env is a Service on the MDE simulator, the memory store and a recording
// messenger, all on one test clock. Tests change behaviour through the
// mock functions (e.def.MachineFn, e.msgr.PostCardFn, …) or onPost.
type env struct {
	t     *testing.T
	clk   *testclock.Clock
	sim   *defender.Simulator
	def   *mock.Defender // over sim; Isolate/Unisolate count and record
	store Approvals
	mem   *store.MemoryApprovals
	rec   *recorder
	msgr  *mock.Messenger[Message, Card] // records into rec
	dir   *mock.Directory
	thr   Throttle // nil: refusals are not throttled
	via   string   // Deps.Transport; "" is the default
	gate  Gate     // nil: no slot is reserved before a POST
	cfg   Config
	svc   *Service

	posts    atomic.Int32 // Isolate/Unisolate calls
	dirCalls atomic.Int32 // Directory lookups
	mu       sync.Mutex
	comments []string // MDE comments of the posts
	onPost   postHook
}

func testConfig() Config {
	return Config{
		AllowedUsers:      []string{analyst, socGroup},
		Approvers:         []string{boss, boss2},
		ApprovalTTL:       time.Hour,
		QueueMaxWait:      2 * time.Hour,
		CommandTimeout:    5 * time.Second,
		CallTimeout:       5 * time.Second,
		PollInterval:      5 * time.Millisecond,
		PollFastFor:       10 * time.Minute,
		PollMaxInterval:   5 * time.Minute,
		FollowFor:         72 * time.Hour,
		GroupCacheTTL:     config.DefaultGroupCacheTTL,
		SchedulerEvery:    10 * time.Millisecond,
		ResendBackoff:     config.DefaultFixed().ResendBackoff,
		ReconcileChecks:   config.DefaultFixed().ReconcileChecks,
		RefusalBurst:      config.DefaultRefusalBurst,
		RefusalWindow:     config.DefaultRefusalWindow,
		BulkProgressEvery: config.DefaultBulkProgressEvery,
		BulkReadEvery:     config.DefaultBulkReadEvery,
		BulkReadSkew:      config.DefaultBulkReadSkew,
	}
}

// newEnv builds an env; mod may change it (cfg, store, fakes) before the
// Service is made.
func newEnv(t *testing.T, mod ...func(*env)) *env {
	t.Helper()
	clk := testclock.New(testclock.Start)
	sim := defender.NewSimulator(clk.Now)
	mem := store.NewMemoryApprovals(storeConfig(clk.Now))
	e := &env{t: t, clk: clk, sim: sim, def: mock.DefenderOver(sim), store: mem, mem: mem, rec: &recorder{}, cfg: testConfig()}
	e.msgr = e.rec.messenger()
	e.def.IsolateFn = func(ctx context.Context, slot defender.Slot, id string, typ defender.IsolationType, c string) (defender.MachineAction, error) {
		return e.post(c, func() (defender.MachineAction, error) { return sim.Isolate(ctx, slot, id, typ, c) })
	}
	e.def.UnisolateFn = func(ctx context.Context, slot defender.Slot, id, c string) (defender.MachineAction, error) {
		return e.post(c, func() (defender.MachineAction, error) { return sim.Unisolate(ctx, slot, id, c) })
	}
	e.dir = &mock.Directory{GroupMembersFn: func(_ context.Context, g string) ([]string, error) {
		e.dirCalls.Add(1)
		return map[string][]string{socGroup: {analyst2}}[g], nil
	}}
	for _, m := range mod {
		m(e)
	}
	e.svc = e.newService()
	return e
}

func (e *env) post(comment string, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
	n := int(e.posts.Add(1))
	e.mu.Lock()
	e.comments = append(e.comments, comment)
	hook := e.onPost
	e.mu.Unlock()
	if hook != nil {
		return hook(n, real)
	}
	return real()
}

func (e *env) setOnPost(h postHook) {
	e.mu.Lock()
	e.onPost = h
	e.mu.Unlock()
}

// newService is one more replica on the env's store, fakes and clock.
func (e *env) newService() *Service {
	s := New(e.cfg, Deps{
		Defender: e.def, Approvals: e.store, Gate: e.gate, Messenger: e.msgr, Directory: e.dir, Throttle: e.thr, Transport: e.via,
		Logger: zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel), Now: e.clk.Now, Version: "test",
	})
	e.t.Cleanup(func() { s.Stop(); s.Wait() })
	return s
}

func (e *env) command(user, cmd, text string) {
	e.t.Helper()
	if err := e.svc.Command(context.Background(), Invocation{Command: cmd, Text: text, User: user, Channel: channel, TriggerID: "trig-" + text, DeliveryID: "env-1"}); err != nil {
		e.t.Logf("Command returned (for logs): %v", err)
	}
}

// click presses a button on id's card (its recorded channel and ts).
func (e *env) click(svc *Service, id, user string, approve bool) {
	e.t.Helper()
	ch, ts := channel, ""
	if r, err := e.store.Get(context.Background(), id); err == nil {
		ch, ts = r.Channel, r.MessageTS
	}
	b := ButtonDeny
	if approve {
		b = ButtonApprove
	}
	if err := svc.Click(context.Background(), Click{RequestID: id, User: user, Channel: ch, MessageTS: ts, Action: b}); err != nil {
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
		e.t.Fatalf("no pending request for web-01: %+v, %v (ephemeral: %+v)", r, err, e.rec.ephemerals)
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
	deadline := time.Now().Add(20 * time.Second) // generous: CI runs every package at once on 2 cores
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

// events is the audit trail of request id.
func (e *env) events(id string) []store.Event {
	e.t.Helper()
	evs, err := e.store.History(context.Background(), id)
	if err != nil {
		e.t.Fatalf("history %s: %v", id, err)
	}
	return evs
}

func (e *env) history(id string) []string {
	e.t.Helper()
	var out []string
	for _, ev := range e.events(id) {
		out = append(out, ev.Type)
	}
	return out
}

// lastRefusal is the newest "refused" event of the global audit stream,
// where refusals go (they have no request).
func (e *env) lastRefusal() (store.Event, bool) {
	e.t.Helper()
	evs, err := e.mem.AuditTail(context.Background(), 1000)
	if err != nil {
		e.t.Fatalf("audit tail: %v", err)
	}
	for j := len(evs) - 1; j >= 0; j-- {
		if evs[j].Type == store.EventRefused {
			return evs[j], true
		}
	}
	return store.Event{}, false
}

// event is the last audit event of type typ for id; ok false if none.
func (e *env) event(id, typ string) (store.Event, bool) {
	e.t.Helper()
	evs := e.events(id)
	for j := len(evs) - 1; j >= 0; j-- {
		if evs[j].Type == typ {
			return evs[j], true
		}
	}
	return store.Event{}, false
}

// simActions lists the Isolate/Unisolate actions MDE (the simulator) holds
// for a machine: the ground truth of "called MDE exactly once".
func simActions(t *testing.T, sim *defender.Simulator, machineID string) []defender.MachineAction {
	t.Helper()
	acts, err := sim.MachineActions(context.Background(), machineID)
	if err != nil {
		t.Fatalf("simulator actions: %v", err)
	}
	return acts
}
