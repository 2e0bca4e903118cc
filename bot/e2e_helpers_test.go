package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/store"
)

const (
	e2eTenant   = "11111111-2222-3333-4444-555555555555"
	e2eClientID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	e2eSecret   = "e2e-client-s3cret"
	e2eToken    = "eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJNYWNoaW5lLklzb2xhdGUiXX0.ZTJlLXRva2Vu"
	machineA    = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378"
	machineB    = "8c2f4967d9728e5aa3c06a9e617a22a4a5a17379"
)

// mdePost is one POST the fake MDE received.
type mdePost struct {
	At        time.Time
	Op        string // "isolate", "unisolate", "cancel"
	MachineID string
	Body      map[string]string
	Status    int
}

// fakeMDE is Azure AD (OIDC discovery + client-credentials token) and the
// MDE machine and machine-action API on one TLS loopback server. Actions
// start Pending and turn Succeeded on the first status read.
type fakeMDE struct {
	srv *httptest.Server

	mu           sync.Mutex
	changed      chan struct{}
	machines     map[string]defender.Machine
	actions      []defender.MachineAction
	posts        []mdePost
	tokens       int
	throttleNext int // answer the next isolate POSTs with 429
	retryAfter   int // seconds, for those 429s
	seq          int
}

func newFakeMDE(t testing.TB, machines ...defender.Machine) *fakeMDE {
	t.Helper()
	m := &fakeMDE{changed: make(chan struct{}), machines: map[string]defender.Machine{}}
	for _, mc := range machines {
		m.machines[mc.ID] = mc
	}
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(m.serve))
	m.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake noise from closed idle conns
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	return m
}

func e2eMachine(id, host string) defender.Machine {
	seen := time.Now().Add(-time.Hour).UTC()
	build := int64(22631)
	return defender.Machine{ID: id, ComputerDNSName: host, OSPlatform: "Windows11", OSBuild: &build,
		HealthStatus: "Active", RiskScore: "High", ExposureLevel: "Medium", LastSeen: &seen}
}

func (m *fakeMDE) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// waitPosts waits until at least n POSTs arrived.
func (m *fakeMDE) waitPosts(t testing.TB, n int) []mdePost {
	t.Helper()
	deadline := time.After(wait)
	for {
		m.mu.Lock()
		if len(m.posts) >= n {
			out := append([]mdePost(nil), m.posts...)
			m.mu.Unlock()
			return out
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fake MDE: timed out waiting for %d POSTs (have %d)", n, len(m.Posts()))
		}
	}
}

func (m *fakeMDE) Posts() []mdePost {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mdePost(nil), m.posts...)
}

func (m *fakeMDE) throttle(n, retryAfterSeconds int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.throttleNext, m.retryAfter = n, retryAfterSeconds
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func mdeErr(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg, "target": "corr-" + code}}
}

var (
	eqFilter     = regexp.MustCompile(`^(computerDnsName|machineId) eq '((?:[^']|'')*)'$`)
	prefixFilter = regexp.MustCompile(`^startswith\(computerDnsName,'((?:[^']|'')*)'\)$`)
)

func (m *fakeMDE) serve(w http.ResponseWriter, r *http.Request) {
	base := m.srv.URL + "/" + e2eTenant
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && p == "/"+e2eTenant+"/v2.0/.well-known/openid-configuration":
		writeJSON(w, 200, map[string]any{"token_endpoint": base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize", "issuer": base + "/v2.0"})
		return
	case r.Method == http.MethodPost && p == "/"+e2eTenant+"/oauth2/v2.0/token":
		_ = r.ParseForm()
		if r.PostForm.Get("client_secret") != e2eSecret {
			writeJSON(w, 401, map[string]any{"error": "invalid_client"})
			return
		}
		m.mu.Lock()
		m.tokens++
		m.mu.Unlock()
		writeJSON(w, 200, map[string]any{"access_token": e2eToken, "token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+e2eToken {
		writeJSON(w, 401, mdeErr("Unauthorized", "bad token"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.notifyLocked()
	parts := strings.Split(strings.Trim(p, "/"), "/") // api, machines|machineactions, id, op
	switch {
	case r.Method == http.MethodGet && p == "/api/machines":
		f := r.URL.Query().Get("$filter")
		var out []defender.Machine
		for _, mc := range m.machines {
			if g := eqFilter.FindStringSubmatch(f); g != nil && g[1] == "computerDnsName" && strings.EqualFold(mc.ComputerDNSName, strings.ReplaceAll(g[2], "''", "'")) {
				out = append(out, mc)
			} else if g := prefixFilter.FindStringSubmatch(f); g != nil && strings.HasPrefix(mc.ComputerDNSName, strings.ReplaceAll(g[1], "''", "'")) {
				out = append(out, mc)
			}
		}
		writeJSON(w, 200, map[string]any{"value": append([]defender.Machine{}, out...)})
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "machines":
		mc, ok := m.machines[parts[2]]
		if !ok {
			writeJSON(w, 404, mdeErr("ResourceNotFound", "Machine "+parts[2]+" was not found"))
			return
		}
		writeJSON(w, 200, mc)
	case r.Method == http.MethodGet && p == "/api/machineactions":
		g := eqFilter.FindStringSubmatch(r.URL.Query().Get("$filter"))
		out := []defender.MachineAction{}
		for _, a := range m.actions {
			if g != nil && g[1] == "machineId" && a.MachineID == g[2] {
				out = append(out, a)
			}
		}
		writeJSON(w, 200, map[string]any{"value": out})
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "machineactions":
		for i := range m.actions {
			if a := &m.actions[i]; a.ID == parts[2] {
				if a.Status == defender.StatusPending {
					a.Status, a.LastUpdateDateTimeUTC = defender.StatusSucceeded, time.Now().UTC()
				}
				writeJSON(w, 200, *a)
				return
			}
		}
		writeJSON(w, 404, mdeErr("ResourceNotFound", "no such action"))
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "machines" && (parts[3] == "isolate" || parts[3] == "unisolate"):
		var in map[string]string
		_ = json.Unmarshal(body, &in)
		post := mdePost{At: time.Now(), Op: parts[3], MachineID: parts[2], Body: in}
		mc, ok := m.machines[parts[2]]
		switch {
		case !ok:
			post.Status = 404
			writeJSON(w, 404, mdeErr("ResourceNotFound", "Machine was not found"))
		case m.throttleNext > 0:
			m.throttleNext--
			post.Status = 429
			w.Header().Set("Retry-After", fmt.Sprint(m.retryAfter))
			writeJSON(w, 429, mdeErr("TooManyRequests", "slow down"))
		default:
			m.seq++
			typ, scope := "Isolate", in["IsolationType"]
			if parts[3] == "unisolate" {
				typ, scope = "Unisolate", ""
			}
			now := time.Now().UTC()
			a := defender.MachineAction{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", m.seq), Type: typ, Scope: scope,
				Requestor: e2eClientID, RequestorComment: in["Comment"], Status: defender.StatusPending,
				MachineID: mc.ID, ComputerDNSName: mc.ComputerDNSName, CreationDateTimeUTC: now, LastUpdateDateTimeUTC: now}
			m.actions = append(m.actions, a)
			post.Status = 201
			writeJSON(w, 201, a)
		}
		m.posts = append(m.posts, post)
	default:
		writeJSON(w, 404, mdeErr("NotFound", "unexpected "+r.Method+" "+p))
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
	logs   *syncBuffer
}

type e2eOptions struct {
	commands commands.Config
	limits   store.Limits
	bot      Config
}

func newWorld(t *testing.T, machines ...defender.Machine) *e2eWorld {
	t.Helper()
	if len(machines) == 0 {
		machines = []defender.Machine{e2eMachine(machineA, "host-42.corp.example"), e2eMachine(machineB, "host-43.corp.example")}
	}
	w := &e2eWorld{t: t, fs: fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}}),
		mde: newFakeMDE(t, machines...), redis: redistest.Start(t), prefix: "e2e-" + strings.ToLower(t.Name()), logs: &syncBuffer{}}
	w.prefix = strings.NewReplacer("/", "-", "{", "", "}", "").Replace(w.prefix)
	w.store = store.NewApprovals(w.redis.Client(), store.ApprovalsConfig{Prefix: w.prefix})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", w.logs.String())
		}
		for _, secret := range []string{e2eSecret, e2eToken, w.fs.BotToken(), w.fs.AppToken()} {
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
	limiter := store.NewLimiter(rdb, store.LimiterConfig{Limits: o.limits, Prefix: w.prefix})
	gate := commands.NewGate(limiter, time.Minute, nil)
	dc, err := defender.New(defender.Config{APIURL: w.mde.srv.URL, AuthorityHost: w.mde.srv.URL, TenantID: e2eTenant,
		ClientID: e2eClientID, ClientSecret: e2eSecret, HTTPClient: w.mde.srv.Client(), Gate: gate, Logger: logger})
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
	svc := commands.New(cc, commands.Deps{Defender: dc, Approvals: approvals, Limiter: limiter, Messenger: msg,
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
