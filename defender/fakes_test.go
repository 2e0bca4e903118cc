package defender

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/syncbuf"
)

const (
	testTenant   = "11111111-2222-3333-4444-555555555555"
	testClientID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	testSecret   = "s3cr3t~Value.With+Plus&Amp"
	// JWT-shaped so that redaction of token-looking text is exercised too.
	testToken = "eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJNYWNoaW5lLklzb2xhdGUiXX0.c2lnbmF0dXJlLWZvci10ZXN0cw"
	machineA  = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378"
	actionA   = "5382f7ea-7557-4ab7-9782-d50480024a4e"
)

// fakeAuthority is an Azure AD stand-in: the OIDC discovery document and a
// client-credentials token endpoint, over TLS as MSAL requires.
type fakeAuthority struct {
	srv    *httptest.Server
	tokens atomic.Int64 // token requests received

	mu    sync.Mutex
	fail  func(w http.ResponseWriter) bool // when set and true, the token request failed
	issue func(n int64) string             // the n-th token (from 1); nil: always testToken
	forms []map[string][]string
}

func newFakeAuthority(t *testing.T) *fakeAuthority {
	t.Helper()
	a := &fakeAuthority{}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAuthority) serve(w http.ResponseWriter, r *http.Request) {
	base := a.srv.URL + "/" + testTenant
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/"+testTenant+"/v2.0/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
		})
	case r.Method == http.MethodPost && r.URL.Path == "/"+testTenant+"/oauth2/v2.0/token":
		n := a.tokens.Add(1)
		_ = r.ParseForm()
		a.mu.Lock()
		a.forms = append(a.forms, r.PostForm)
		fail, issue := a.fail, a.issue
		a.mu.Unlock()
		if fail != nil && fail(w) {
			return
		}
		tok := testToken
		if issue != nil {
			tok = issue(n)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
		})
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

// setIssue scripts the tokens issued: issue(n) is the n-th, from 1.
func (a *fakeAuthority) setIssue(issue func(n int64) string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.issue = issue
}

// allForms returns every token request's form, in order.
func (a *fakeAuthority) allForms() []map[string][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string][]string(nil), a.forms...)
}

// setFail scripts token failures; fail returns true when it answered.
func (a *fakeAuthority) setFail(fail func(w http.ResponseWriter) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = fail
}

func (a *fakeAuthority) lastForm(t *testing.T) map[string][]string {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.forms) == 0 {
		t.Fatal("the authority received no token request")
	}
	return a.forms[len(a.forms)-1]
}

// seen is one request as the fake MDE received it.
type seen struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	At                     time.Time
	Filter                 string // decoded $filter
}

// fakeMDE is an MDE API stand-in whose answers each test scripts.
type fakeMDE struct {
	srv *httptest.Server

	mu     sync.Mutex
	reqs   []seen
	handle func(w http.ResponseWriter, r *http.Request, n int) // n counts from 1
}

func newFakeMDE(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *fakeMDE {
	t.Helper()
	m := &fakeMDE{handle: handle}
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.reqs = append(m.reqs, seen{
			Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: body, At: time.Now(), Filter: r.URL.Query().Get("$filter"),
		})
		n := len(m.reqs)
		h := m.handle
		m.mu.Unlock()
		if h == nil {
			http.Error(w, "no handler", http.StatusInternalServerError)
			return
		}
		h(w, r, n)
	}))
	// Concurrent tests leave spare connections mid-handshake when the
	// server closes; the server's complaints about them are noise.
	m.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMDE) requests() []seen {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]seen(nil), m.reqs...)
}

// reply writes status and a JSON body.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// mdeError is MDE's error envelope.
func mdeError(code, msg, target string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg, "target": target}})
	return string(b)
}

// countingGate records every Admit and Throttled call; err, when set, is
// returned by Admit.
type countingGate struct {
	mu        sync.Mutex
	admits    []string
	throttled []time.Duration
	budgets   []string // of Throttled
	err       error
}

func (g *countingGate) Admit(ctx context.Context, budget string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.admits = append(g.admits, budget)
	return g.err
}

func (g *countingGate) Throttled(ctx context.Context, budget string, retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.throttled = append(g.throttled, retryAfter)
	g.budgets = append(g.budgets, budget)
}

func (g *countingGate) snapshot() (admits []string, throttled []time.Duration, budgets []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.admits...), append([]time.Duration(nil), g.throttled...), append([]string(nil), g.budgets...)
}

// env is a Client wired to a fake authority and a fake MDE.
type env struct {
	auth   *fakeAuthority
	mde    *fakeMDE
	client *Client
	logs   *syncbuf.Buffer
	sleeps *sleepLog
}

// sleepLog replaces real backoff waits: it records each wait and returns
// at once, so retry tests are fast and see exactly what was waited.
type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
	at []int // number of MDE requests received when the wait began
}

func (s *sleepLog) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func trustingClient(t *testing.T, srvs ...*httptest.Server) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	for _, s := range srvs {
		pool.AddCert(s.Certificate())
	}
	tr := srvs[0].Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// newEnv builds the fakes and a Client; mod adjusts the Config. Backoff
// waits are recorded, not slept, unless realSleep.
func newEnv(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int), mod func(*Config)) *env {
	t.Helper()
	e := &env{auth: newFakeAuthority(t), mde: newFakeMDE(t, handle), logs: &syncbuf.Buffer{}, sleeps: &sleepLog{}}
	cfg := Config{
		APIURL:         e.mde.srv.URL + "/",
		AuthorityHost:  e.auth.srv.URL,
		TenantID:       testTenant,
		ClientID:       testClientID,
		ClientSecret:   testSecret,
		HTTPClient:     trustingClient(t, e.auth.srv, e.mde.srv),
		UserAgent:      "isolate-bot/test",
		Logger:         zerolog.New(e.logs).Level(zerolog.DebugLevel),
		MaxGetAttempts: 3,
		BaseBackoff:    10 * time.Millisecond,
		MaxBackoff:     40 * time.Millisecond,
		Jitter:         func() float64 { return 0.5 },
		// As in production (internal/config): 30 s each.
		MaxRetryAfterWait: 30 * time.Second,
		AttemptTimeout:    30 * time.Second,
		// As in production: 2 s (tests that sleep set their own).
		NotFoundRetryDelay: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		e.sleeps.mu.Lock()
		e.sleeps.d = append(e.sleeps.d, d)
		e.sleeps.at = append(e.sleeps.at, len(e.mde.requests()))
		e.sleeps.mu.Unlock()
		return ctx.Err()
	}
	e.client = c
	return e
}

// actionJSON is a MachineAction as MDE sends it, with extra fields this
// client does not know.
func actionJSON(id, status, created string) string {
	return fmt.Sprintf(`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#MachineActions/$entity",
"id":%q,"type":"Isolate","scope":"Full","requestor":%q,"requestorComment":"c","status":%q,
"machineId":%q,"computerDnsName":"desktop-test","creationDateTimeUtc":%q,
"lastUpdateDateTimeUtc":%q,"relatedFileInfo":null,"someFutureField":{"nested":[1,2,3]},"errorHResult":0}`,
		id, testClientID, status, machineA, created, created)
}

// mustNotContainSecrets fails if s holds the client secret or the token.
func mustNotContainSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{testSecret, testToken, strings.SplitN(testToken, ".", 2)[1]} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains a secret (%.12s…): %s", what, secret, s)
		}
	}
}
