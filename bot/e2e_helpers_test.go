package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/internal/syncbuf"
	"github.com/soc/isolate-bot/store"
)

const (
	machineA = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378"
	machineB = "8c2f4967d9728e5aa3c06a9e617a22a4a5a17379"
)

// mdePost is one isolate/unisolate POST the fake MDE received.
type mdePost struct {
	At        time.Time
	Op        string // "isolate" or "unisolate"
	MachineID string
	Body      map[string]string
	Status    int
}

// fakeMDE is internal/fakemde (Azure AD and the MDE API on one loopback
// TLS server, backed by the simulator) with the views these tests use.
type fakeMDE struct{ *fakemde.Server }

func newFakeMDE(t testing.TB, machines ...defender.Machine) *fakeMDE {
	t.Helper()
	m := &fakeMDE{fakemde.New(t, nil)}
	// Actions finish almost at once, so status following ends quickly.
	m.Sim.PendingFor, m.Sim.CompleteAfter = 5*time.Millisecond, 10*time.Millisecond
	for _, mc := range machines {
		if err := m.Sim.AddMachine(mc); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func e2eMachine(id, host string) defender.Machine {
	seen := time.Now().Add(-time.Hour).UTC()
	build := int64(22631)
	return defender.Machine{ID: id, ComputerDNSName: host, OSPlatform: "Windows11", OSBuild: &build,
		HealthStatus: "Active", OnboardingStatus: "Onboarded", RiskScore: "High", ExposureLevel: "Medium", LastSeen: &seen}
}

// Posts are the isolate and unisolate POSTs answered so far, in order.
func (m *fakeMDE) Posts() []mdePost {
	var out []mdePost
	for _, r := range m.Requests("") {
		if r.Method != http.MethodPost || (r.Op != fakemde.OpIsolate && r.Op != fakemde.OpUnisolate) || r.Status == 0 {
			continue
		}
		p := mdePost{At: r.At, Op: r.Op, Status: r.Status, MachineID: strings.Split(strings.TrimPrefix(r.Path, "/api/machines/"), "/")[0]}
		_ = json.Unmarshal([]byte(r.Body), &p.Body)
		out = append(out, p)
	}
	return out
}

// waitPosts waits until at least n POSTs were answered.
func (m *fakeMDE) waitPosts(t testing.TB, n int) []mdePost {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d MDE POSTs", n), func() bool { return len(m.Posts()) >= n })
	return m.Posts()
}

// throttle answers the next n isolate POSTs with 429 and Retry-After.
func (m *fakeMDE) throttle(n, retryAfterSeconds int) {
	for range n {
		m.FailNext(fakemde.OpIsolate, fakemde.Fault{Status: http.StatusTooManyRequests, Code: "TooManyRequests",
			Message: "slow down", RetryAfter: retryAfterSeconds})
	}
}

// e2eWorld is one deployment: fake Slack, fake MDE and Azure AD, real Redis.
// Instances (process-like replicas) are started on it with start.
type e2eWorld struct {
	t      *testing.T
	fs     *fakeslack.Server
	mde    *fakeMDE
	redis  *redistest.Server
	prefix string
	store  *store.Approvals // for assertions
	logs   *syncbuf.Buffer
}

type e2eOptions struct {
	commands commands.Config
	limits   ratelimit.Limits
	bot      Config
}

func newWorld(t *testing.T, machines ...defender.Machine) *e2eWorld {
	t.Helper()
	if len(machines) == 0 {
		machines = []defender.Machine{e2eMachine(machineA, "host-42.corp.example"), e2eMachine(machineB, "host-43.corp.example")}
	}
	w := &e2eWorld{t: t, fs: fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}}),
		mde: newFakeMDE(t, machines...), redis: redistest.Start(t), prefix: "e2e-" + strings.ToLower(t.Name()), logs: &syncbuf.Buffer{}}
	w.prefix = strings.NewReplacer("/", "-", "{", "", "}", "").Replace(w.prefix)
	w.store = store.NewApprovals(w.redis.Client(), store.ApprovalsConfig{Prefix: w.prefix})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", w.logs.String())
		}
		for _, secret := range []string{fakemde.ClientSecret, fakemde.Token, w.fs.BotToken(), w.fs.AppToken()} {
			if strings.Contains(w.logs.String(), secret) {
				t.Errorf("a secret or token appears in the logs")
			}
		}
	})
	return w
}

// instance is one running isolate-bot process: its own Redis clients, MDE
// client (token cache), Slack client, Service and Runner.
type instance struct {
	svc     *commands.Service
	runner  *Runner
	metrics *testMetrics
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func (w *e2eWorld) start(o e2eOptions) *instance {
	t := w.t
	t.Helper()
	logger := zerolog.New(w.logs).With().Timestamp().Logger()
	rdb := w.redis.Client()
	approvals := store.NewApprovals(rdb, store.ApprovalsConfig{Prefix: w.prefix})
	limiter := ratelimit.New(rdb, ratelimit.Config{Limits: o.limits, Prefix: w.prefix})
	gate := ratelimit.NewGate(limiter, time.Minute, nil, zerolog.Nop())
	dc, err := defender.New(defender.Config{APIURL: w.mde.URL(), AuthorityHost: w.mde.URL(), TenantID: fakemde.TenantID,
		ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret, HTTPClient: w.mde.HTTPClient(), Gate: gate, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	api := slack.New(w.fs.BotToken(), slack.OptionAppLevelToken(w.fs.AppToken()), slack.OptionAPIURL(w.fs.APIURL()))
	msg := NewSlack(api, logger)
	cc := o.commands
	if cc.AllowedUsers == nil {
		cc.AllowedUsers = []string{"U0ALICE", "U0BOB", "U0CAROL"}
	}
	if cc.Approvers == nil {
		cc.Approvers = []string{"U0BOB", "U0CAROL"}
	}
	if cc.PollInterval == 0 {
		cc.PollInterval = 20 * time.Millisecond
	}
	if cc.SchedulerEvery == 0 {
		cc.SchedulerEvery = 50 * time.Millisecond
	}
	svc := commands.New(cc, commands.Deps{Defender: dc, Approvals: approvals, Gate: gate, Messenger: msg,
		Directory: msg, Logger: logger})
	bc := o.bot
	if bc.PingInterval == 0 {
		bc.PingInterval = 5 * time.Second
	}
	in := &instance{svc: svc, metrics: &testMetrics{}, done: make(chan error, 2)}
	in.runner = New(bc, svc, api, approvals, logger, in.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	opened := w.fs.ConnectionsOpened()
	go func() { in.done <- in.runner.Run(ctx) }()
	go func() { in.done <- svc.RunScheduler(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	if err := w.fs.WaitConnectionsOpened(opened+1, wait); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "instance connected", in.runner.Connected)
	return in
}

// stop ends the instance like a SIGTERM: Runner drains, background work stops.
func (in *instance) stop(t testing.TB) {
	if in.stopped {
		return
	}
	in.stopped = true
	in.cancel()
	for range 2 {
		select {
		case err := <-in.done:
			if err != nil {
				t.Errorf("instance stopped with %v", err)
			}
		case <-time.After(wait):
			t.Error("instance did not stop")
			return
		}
	}
	in.svc.Stop()
	in.svc.Wait()
}

// card waits for the request card on machine host in C1 posted after
// index skip, and returns it with its request id.
func (w *e2eWorld) card(t testing.TB, host string) (fakeslack.Message, string) {
	t.Helper()
	var found fakeslack.Message
	_, err := w.fs.WaitMessages("C1", func(ms []fakeslack.Message) bool {
		for _, m := range ms {
			if m.ThreadTS == "" && m.User == w.fs.BotUserID() && strings.Contains(m.AllText(), host) {
				if _, ok := m.Button(ActionApprove); ok {
					found = m
					return true
				}
			}
		}
		return false
	}, wait)
	if err != nil {
		t.Fatalf("no request card for %s: %v", host, err)
	}
	b, _ := found.Button(ActionApprove)
	id := unesc(b.Value)
	// commands records the card's ts just after posting it; a click in
	// that gap (no human is that fast) leaves the request without its
	// thread (reported to commands). Wait for the record, like a human.
	waitUntil(t, id+" knows its card", func() bool {
		r, err := w.store.Get(context.Background(), id)
		return err == nil && r.MessageTS == found.TS
	})
	return found, id
}

// state waits until request id reaches want.
func (w *e2eWorld) state(t testing.TB, id string, want store.State) store.Request {
	t.Helper()
	var r store.Request
	waitUntil(t, fmt.Sprintf("%s reaches %s", id, want), func() bool {
		var err error
		r, err = w.store.Get(context.Background(), id)
		return err == nil && r.State == want
	})
	return r
}

// ephemeral waits for an ephemeral to user containing substr (any case).
func (w *e2eWorld) ephemeral(t testing.TB, user, substr string) fakeslack.Ephemeral {
	t.Helper()
	var got fakeslack.Ephemeral
	_, err := w.fs.WaitEphemeral(user, func(es []fakeslack.Ephemeral) bool {
		for _, e := range es {
			if strings.Contains(strings.ToLower(e.AllText()), strings.ToLower(substr)) {
				got = e
				return true
			}
		}
		return false
	}, wait)
	if err != nil {
		var all []string
		for _, e := range w.fs.Ephemerals(user) {
			all = append(all, e.AllText())
		}
		t.Fatalf("no ephemeral to %s containing %q; got:\n%s", user, substr, strings.Join(all, "\n---\n"))
	}
	return got
}

func (w *e2eWorld) thread(t testing.TB, ts, substr string) {
	t.Helper()
	_, err := w.fs.WaitThread("C1", ts, func(ms []fakeslack.Message) bool {
		for _, m := range ms {
			if strings.Contains(strings.ToLower(m.AllText()), strings.ToLower(substr)) {
				return true
			}
		}
		return false
	}, wait)
	if err != nil {
		var all []string
		for _, m := range w.fs.Thread("C1", ts) {
			all = append(all, m.AllText())
		}
		t.Fatalf("thread %s has no reply containing %q; replies:\n%s", ts, substr, strings.Join(all, "\n---\n"))
	}
}
