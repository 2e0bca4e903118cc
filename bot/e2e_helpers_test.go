package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/app"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/internal/syncbuf"
	"github.com/soc/isolate-bot/store"
)

// Package bot's names the tests below use unqualified.
const (
	ActionApprove = bot.ActionApprove
	ActionDeny    = bot.ActionDeny
	BlockIDPrefix = bot.BlockIDPrefix
	wait          = bot.Wait
)

var (
	unesc       = bot.Unesc
	waitUntil   = bot.WaitUntil
	assertNoRaw = bot.AssertNoRaw
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

// e2eOptions are what a test changes in an instance: configuration
// variables, and fixed values (quicker timings) set on the loaded Config.
type e2eOptions struct {
	env   map[string]string
	fixed func(*config.Fixed)
}

func newWorld(t *testing.T, machines ...defender.Machine) *e2eWorld {
	t.Helper()
	if len(machines) == 0 {
		machines = []defender.Machine{e2eMachine(machineA, "host-42.corp.example"), e2eMachine(machineB, "host-43.corp.example")}
	}
	w := &e2eWorld{t: t, fs: fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}}),
		mde: newFakeMDE(t, machines...), redis: redistest.Start(t), prefix: "e2e-" + strings.ToLower(t.Name()), logs: &syncbuf.Buffer{}}
	w.prefix = strings.NewReplacer("/", "-", "{", "", "}", "").Replace(w.prefix)
	w.store = store.NewApprovals(w.redis.Client(), store.ApprovalsConfig{Prefix: w.prefix, Retention: config.DefaultAuditRetention,
		AuditMaxLen: config.DefaultAuditMaxLen})
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

// instance is one running isolate-bot process, built by internal/app as
// production builds it: its own Redis clients, MDE client (token cache),
// Slack client, metrics, Service and Runner.
type instance struct {
	app     *app.App
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// env is the instance's configuration: fake Slack, fake MDE and Azure AD
// over TLS, the world's Redis, an ops HTTP port of its own.
func (w *e2eWorld) env(extra map[string]string) func(string) string {
	env := map[string]string{
		"SLACK_APP_TOKEN":      w.fs.AppToken(),
		"SLACK_BOT_TOKEN":      w.fs.BotToken(),
		"SLACK_API_URL":        w.fs.APIURL(),
		"AZURE_TENANT_ID":      fakemde.TenantID,
		"AZURE_CLIENT_ID":      fakemde.ClientID,
		"AZURE_CLIENT_SECRET":  fakemde.ClientSecret,
		"AZURE_AUTHORITY_HOST": w.mde.URL(),
		"DEFENDER_API_URL":     w.mde.URL(),
		"REDIS_URL":            "redis://" + w.redis.Addr + "/0",
		"REDIS_PREFIX":         w.prefix,
		"ALLOWED_USER_IDS":     "U0ALICE,U0BOB,U0CAROL",
		"APPROVER_USER_IDS":    "U0BOB,U0CAROL",
		"HTTP_ADDR":            "127.0.0.1:0",
	}
	maps.Copy(env, extra)
	return func(k string) string { return env[k] }
}

func (w *e2eWorld) start(o e2eOptions) *instance {
	t := w.t
	t.Helper()
	cfg, err := config.Load(w.env(o.env))
	if err != nil {
		t.Fatal(err)
	}
	cfg.PollInterval, cfg.SchedulerEvery = 20*time.Millisecond, 50*time.Millisecond
	if o.fixed != nil {
		o.fixed(&cfg.Fixed)
	}
	a, err := app.New(cfg, app.Options{
		Log:           zerolog.New(w.logs).With().Timestamp().Logger(),
		MDEHTTPClient: w.mde.HTTPClient(),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{app: a, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	opened := w.fs.ConnectionsOpened()
	go func() { in.done <- a.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	if err := w.fs.WaitConnectionsOpened(opened+1, wait); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "instance connected", a.Connected)
	return in
}

// stop ends the instance like a SIGTERM: the app's ordered shutdown.
func (in *instance) stop(t testing.TB) {
	if in.stopped {
		return
	}
	in.stopped = true
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("instance stopped with %v", err)
		}
	case <-time.After(wait):
		t.Error("instance did not stop")
	}
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
