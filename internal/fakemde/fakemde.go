// Package fakemde is a fake Microsoft Defender for Endpoint API and Azure AD
// authority on one loopback TLS server, for end-to-end tests. The real
// defender.Client (MSAL and net/http, unmodified) talks to it. Machine and
// action state comes from a defender.Simulator behind the HTTP layer, so the
// fake behaves like MDE (actions progress, a second action while one is
// pending is refused) while tests inject faults and count requests.
package fakemde

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
)

// Fixed identities of the fake tenant.
const (
	TenantID     = "11111111-2222-3333-4444-555555555555"
	ClientID     = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	ClientSecret = "fake-client-secret-value~do-not-log"
	// Token is what the authority issues until SetTokens is called: a
	// JWT-shaped token with both roles that never expires.
	Token = "eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJNYWNoaW5lLklzb2xhdGUiLCJNYWNoaW5lLlJlYWQuQWxsIl19.ZmFrZS1tZGUtdG9rZW4"
)

// Operation names used by Count, FailNext and Hang.
const (
	OpToken     = "token"
	OpIsolate   = "isolate"
	OpUnisolate = "unisolate"
	OpMachine   = "machine"  // GET /api/machines/{id}
	OpMachines  = "machines" // GET /api/machines?$filter=
	OpAction    = "action"   // GET /api/machineactions/{id}
	OpActions   = "actions"  // GET /api/machineactions?$filter=
	OpCancel    = "cancel"   // POST /api/machineactions/{id}/cancel
)

// Request is one request the fake received.
type Request struct {
	Op     string
	Method string
	Path   string
	Query  string
	Body   string
	Auth   string // the Authorization header
	At     time.Time
	Status int // the HTTP status answered; 0 while the answer is pending
}

// Fault is an injected answer: Status with MDE's error body, and a
// Retry-After header in seconds when RetryAfter > 0.
type Fault struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int
}

// Server is the fake. Sim holds the devices and actions; tests may add
// machines to it or read its state.
type Server struct {
	Sim *defender.Simulator
	srv *httptest.Server
	now func() time.Time

	mu        sync.Mutex
	tok       tokenState
	reqs      []Request
	counts    map[string]int
	throttled map[string]int // 429s answered, by op
	faults    map[string][]Fault
	hangs     map[string]time.Duration // delay before answering, after the work is done
	notify    chan struct{}            // closed and replaced on every request
	limits    Limits
	passed    map[string][]time.Time // by budget: calls the limits let through, oldest first
	pageSize  int
}

// New starts the fake; it is closed on t.Cleanup. now is the clock of the
// simulator and of token expiry (time.Now if nil).
func New(t testing.TB, now func() time.Time) *Server {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	s := &Server{
		Sim:       defender.NewSimulator(now),
		now:       now,
		tok:       tokenState{issued: map[string]time.Time{}},
		counts:    map[string]int{},
		throttled: map[string]int{},
		faults:    map[string][]Fault{},
		hangs:     map[string]time.Duration{},
		notify:    make(chan struct{}),
		passed:    map[string][]time.Time{},
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the base of both the authority and the API (https://127.0.0.1:PORT).
func (s *Server) URL() string { return s.srv.URL }

// HTTPClient trusts the fake's certificate.
func (s *Server) HTTPClient() *http.Client { return s.srv.Client() }

// Certificate is the fake's TLS certificate in PEM, for a process that must
// trust it through SSL_CERT_FILE.
func (s *Server) CertificatePEM() []byte {
	return pemCert(s.srv.Certificate().Raw)
}

// FailNext queues one fault for the next request of op.
func (s *Server) FailNext(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], f)
}

// Hang delays the answers to op by d after the work is done (d <= 0 ends
// it): a client that times out then does not know whether MDE acted.
func (s *Server) Hang(op string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.hangs, op)
		return
	}
	s.hangs[op] = d
}

// Count is the number of requests of op received so far.
func (s *Server) Count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// Requests returns every request received, in order.
func (s *Server) Requests(op string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.reqs {
		if op == "" || r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// WaitCount waits until op has been requested at least n times.
func (s *Server) WaitCount(op string, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, ch := s.counts[op], s.notify
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("fakemde: %d %s requests after %s, want %d", got, op, timeout, n)
		}
	}
}

var (
	machinePath = regexp.MustCompile(`^/api/machines/([^/]+)(/isolate|/unisolate)?$`)
	actionPath  = regexp.MustCompile(`^/api/machineactions/([^/]+)(/cancel)?$`)
)

func classify(r *http.Request) (op, id, sub string) {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/oauth2/v2.0/token"):
		return OpToken, "", ""
	case strings.HasSuffix(p, "/.well-known/openid-configuration"):
		return "discovery", "", ""
	case p == "/api/machines":
		return OpMachines, "", ""
	case p == "/api/machineactions":
		return OpActions, "", ""
	}
	if m := machinePath.FindStringSubmatch(p); m != nil {
		switch m[2] {
		case "/isolate":
			return OpIsolate, m[1], ""
		case "/unisolate":
			return OpUnisolate, m[1], ""
		}
		return OpMachine, m[1], ""
	}
	if m := actionPath.FindStringSubmatch(p); m != nil {
		if m[2] == "/cancel" {
			return OpCancel, m[1], ""
		}
		return OpAction, m[1], ""
	}
	return "unknown", "", ""
}

// statusRecorder notes the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// serve records the request on arrival (so WaitCount sees a hung call),
// answers it, then records the status it answered.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	op, id, _ := classify(r)

	s.mu.Lock()
	idx := len(s.reqs)
	s.reqs = append(s.reqs, Request{Op: op, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Body: string(body), Auth: r.Header.Get("Authorization"), At: time.Now()})
	s.counts[op]++
	var fault *Fault
	if ok, wait := s.admitLocked(op, s.now()); !ok {
		f := Fault{Status: http.StatusTooManyRequests, Code: "TooManyRequests",
			Message: "API calls quota exceeded! maximum admitted 100 per Minute."}
		if s.limits.RetryAfter {
			f.RetryAfter = retryAfterSecs(wait)
		}
		fault = &f
	} else if q := s.faults[op]; len(q) > 0 {
		f := q[0]
		fault = &f
		s.faults[op] = q[1:]
	}
	hang := s.hangs[op]
	s.changedLocked()
	s.mu.Unlock()

	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.answer(rec, r, op, id, body, fault, hang)

	s.mu.Lock()
	s.reqs[idx].Status = rec.status
	if rec.status == http.StatusTooManyRequests {
		s.throttled[op]++
	}
	s.changedLocked()
	s.mu.Unlock()
}

func (s *Server) changedLocked() {
	close(s.notify)
	s.notify = make(chan struct{})
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, op, id string, body []byte, fault *Fault, hang time.Duration) {
	if op == "discovery" {
		base := s.srv.URL + "/" + TenantID
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
		})
		return
	}
	if op == OpToken {
		form, _ := url.ParseQuery(string(body))
		if form.Get("client_id") != ClientID || (form.Get("client_secret") != ClientSecret && form.Get("client_assertion") == "") {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
				"error_description": "AADSTS7000215: Invalid client secret provided."})
			return
		}
		s.issueToken(w)
		return
	}
	if why := s.checkToken(r.Header.Get("Authorization")); why != "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized", why)
		return
	}
	if fault != nil {
		if fault.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(fault.RetryAfter))
		}
		writeError(w, fault.Status, fault.Code, fault.Message)
		return
	}

	status, out, err := s.handle(r, op, id, body)
	if hang > 0 {
		select {
		case <-time.After(hang):
		case <-r.Context().Done():
			return
		}
	}
	if err != nil {
		var ae *defender.APIError
		if errors.As(err, &ae) && ae.Status != 0 {
			writeError(w, ae.Status, ae.Code, ae.Message)
			return
		}
		writeError(w, statusOf(err), codeOf(err), err.Error())
		return
	}
	writeJSON(w, status, out)
}

// handle performs op on the simulator. Its errors carry the status MDE
// would answer.
func (s *Server) handle(r *http.Request, op, id string, body []byte) (int, any, error) {
	ctx := r.Context()
	var in struct {
		Comment       *string `json:"Comment"`
		IsolationType *string `json:"IsolationType"`
	}
	if r.Method == http.MethodPost {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields() // MDE body parameters are case-sensitive
		if err := dec.Decode(&in); err != nil || in.Comment == nil {
			return 0, nil, &defender.APIError{Status: 400, Code: "InvalidRequestBody",
				Message: "Request body is invalid", Kind: defender.ErrBadRequest}
		}
	}
	switch op {
	case OpIsolate:
		if in.IsolationType == nil {
			return 0, nil, &defender.APIError{Status: 400, Code: "MissingRequiredParameter",
				Message: "IsolationType is required", Kind: defender.ErrBadRequest}
		}
		a, err := s.Sim.Isolate(ctx, nil, id, defender.IsolationType(*in.IsolationType), *in.Comment)
		return http.StatusCreated, a, err
	case OpUnisolate:
		a, err := s.Sim.Unisolate(ctx, nil, id, *in.Comment)
		return http.StatusCreated, a, err
	case OpCancel:
		a, err := s.Sim.CancelMachineAction(ctx, nil, id, *in.Comment)
		return http.StatusOK, a, err
	case OpMachine:
		m, err := s.Sim.Machine(ctx, id)
		return http.StatusOK, m, err
	case OpAction:
		a, err := s.Sim.MachineAction(ctx, id)
		return http.StatusOK, a, err
	case OpMachines, OpActions:
		return s.list(r, op)
	}
	return 0, nil, &defender.APIError{Status: 404, Code: "NotFound", Message: "no such endpoint", Kind: defender.ErrNotFound}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, defender.ErrNotFound):
		return 404
	case errors.Is(err, defender.ErrAlreadyInProgress), errors.Is(err, defender.ErrBadRequest):
		return 400
	case errors.Is(err, defender.ErrForbidden):
		return 403
	}
	return 500
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, defender.ErrNotFound):
		return "ResourceNotFound"
	case errors.Is(err, defender.ErrAlreadyInProgress):
		return "ActiveRequestAlreadyExists"
	case errors.Is(err, defender.ErrBadRequest):
		return "BadRequest"
	}
	return "InternalServerError"
}

// correlation ids are sequential so tests can match them.
var corr struct {
	sync.Mutex
	n int
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	corr.Lock()
	corr.n++
	target := fmt.Sprintf("00000000-0000-4000-8000-%012d", corr.n)
	corr.Unlock()
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "target": target}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
