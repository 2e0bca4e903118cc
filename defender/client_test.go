package defender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPostRequests proves each POST goes to the right path with the exact
// case-sensitive body MDE expects and the required headers.
func TestPostRequests(t *testing.T) {
	tests := []struct {
		name     string
		call     func(ctx context.Context, c *Client) (MachineAction, error)
		path     string
		wantBody string
	}{
		{"isolate full", func(ctx context.Context, c *Client) (MachineAction, error) {
			return c.Isolate(ctx, nil, machineA, Full, "Isolate for alert 1234 <by> U1 & U2")
		}, "/api/machines/" + machineA + "/isolate", `{"Comment":"Isolate for alert 1234 <by> U1 & U2","IsolationType":"Full"}`},
		{"isolate selective", func(ctx context.Context, c *Client) (MachineAction, error) {
			return c.Isolate(ctx, nil, machineA, Selective, `quote " and \ slash`)
		}, "/api/machines/" + machineA + "/isolate", `{"Comment":"quote \" and \\ slash","IsolationType":"Selective"}`},
		{"isolate unmanaged", func(ctx context.Context, c *Client) (MachineAction, error) {
			return c.Isolate(ctx, nil, machineA, UnManagedDevice, "contain")
		}, "/api/machines/" + machineA + "/isolate", `{"Comment":"contain","IsolationType":"UnManagedDevice"}`},
		{"unisolate", func(ctx context.Context, c *Client) (MachineAction, error) {
			return c.Unisolate(ctx, nil, machineA, "release")
		}, "/api/machines/" + machineA + "/unisolate", `{"Comment":"release"}`},
		{"cancel", func(ctx context.Context, c *Client) (MachineAction, error) {
			return c.CancelMachineAction(ctx, nil, actionA, "stop")
		}, "/api/machineactions/" + actionA + "/cancel", `{"Comment":"stop"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
				reply(w, http.StatusCreated, actionJSON(actionA, StatusPending, "2019-01-02T14:39:38.2262283Z"))
			}, nil)
			a, err := tt.call(context.Background(), e.client)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if a.ID != actionA || a.Status != StatusPending || a.MachineID != machineA || a.Requestor != testClientID {
				t.Errorf("decoded action = %+v", a)
			}
			if want := time.Date(2019, 1, 2, 14, 39, 38, 226228300, time.UTC); !a.CreationDateTimeUTC.Equal(want) {
				t.Errorf("creation time = %v, want %v", a.CreationDateTimeUTC, want)
			}
			reqs := e.mde.requests()
			if len(reqs) != 1 {
				t.Fatalf("MDE got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != tt.path {
				t.Errorf("request = %s %s, want POST %s", r.Method, r.Path, tt.path)
			}
			if string(r.Body) != tt.wantBody {
				t.Errorf("body = %s\nwant   %s", r.Body, tt.wantBody)
			}
			for h, want := range map[string]string{
				"Authorization": "Bearer " + testToken,
				"Content-Type":  "application/json",
				"Accept":        "application/json",
				"User-Agent":    "isolate-bot/test",
			} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("header %s = %q, want %q", h, got, want)
				}
			}
			form := e.auth.lastForm(t)
			if got := form["scope"]; len(got) != 1 || !strings.HasPrefix(got[0], e.mde.srv.URL+"/.default") {
				t.Errorf("token scope = %v, want %s/.default", got, e.mde.srv.URL)
			}
			if form["grant_type"][0] != "client_credentials" || form["client_id"][0] != testClientID || form["client_secret"][0] != testSecret {
				t.Errorf("token form = %v", form)
			}
		})
	}
}

// TestGetRequests proves the GETs' paths, filters, headers (no
// Content-Type), decoding with unknown fields, and newest-first order.
func TestGetRequests(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case r.URL.Path == "/api/machines/"+machineA:
			reply(w, 200, `{"id":"`+machineA+`","computerDnsName":"web-01.contoso.local","osPlatform":"Windows10","healthStatus":"Active","newThing":true,"vmMetadata":{"cloudProvider":"Azure"}}`)
		case r.URL.Path == "/api/machineactions/"+actionA:
			reply(w, 200, actionJSON(actionA, StatusInProgress, "2024-05-01T10:00:00Z"))
		case r.URL.Path == "/api/machineactions":
			// Deliberately not sorted.
			reply(w, 200, `{"@odata.context":"x","value":[`+
				actionJSON("00000000-0000-0000-0000-000000000001", StatusSucceeded, "2024-05-01T10:00:00Z")+","+
				actionJSON("00000000-0000-0000-0000-000000000003", StatusPending, "2024-05-03T10:00:00Z")+","+
				actionJSON("00000000-0000-0000-0000-000000000002", StatusSucceeded, "2024-05-02T10:00:00.5Z")+`]}`)
		default:
			reply(w, 404, mdeError("ResourceNotFound", "nope", "t"))
		}
	}, nil)
	ctx := context.Background()

	m, err := e.client.Machine(ctx, machineA)
	if err != nil || m.ID != machineA || m.ComputerDNSName != "web-01.contoso.local" || m.HealthStatus != "Active" {
		t.Errorf("Machine = %+v, %v", m, err)
	}
	a, err := e.client.MachineAction(ctx, actionA)
	if err != nil || a.ID != actionA || a.Status != StatusInProgress {
		t.Errorf("MachineAction = %+v, %v", a, err)
	}
	acts, err := e.client.MachineActions(ctx, machineA)
	if err != nil {
		t.Fatalf("MachineActions: %v", err)
	}
	var ids []string
	for _, a := range acts {
		ids = append(ids, a.ID[len(a.ID)-1:])
	}
	if got := strings.Join(ids, ","); got != "3,2,1" {
		t.Errorf("MachineActions order = %s, want 3,2,1 (newest first)", got)
	}

	reqs := e.mde.requests()
	if len(reqs) != 3 {
		t.Fatalf("MDE got %d requests, want 3", len(reqs))
	}
	if got, want := reqs[2].Filter, "(machineId eq '"+machineA+"') and (type eq 'Isolate' or type eq 'Unisolate')"; got != want {
		t.Errorf("$filter = %q, want %q", got, want)
	}
	if !strings.HasPrefix(reqs[2].RawQuery, "$filter=") || strings.Contains(reqs[2].RawQuery, " ") || strings.Contains(reqs[2].RawQuery, "+") {
		t.Errorf("raw query %q is not $filter=<percent-encoded>", reqs[2].RawQuery)
	}
	for _, r := range reqs {
		if r.Method != http.MethodGet || r.Header.Get("Content-Type") != "" || r.Header.Get("Authorization") != "Bearer "+testToken ||
			r.Header.Get("Accept") != "application/json" || r.Header.Get("User-Agent") != "isolate-bot/test" {
			t.Errorf("GET %s headers = %v", r.Path, r.Header)
		}
	}
}

// TestInvalidArgumentsSendNothing proves ids and arguments are checked
// before any HTTP or token call.
func TestInvalidArgumentsSendNothing(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 500, "{}") }, nil)
	ctx := context.Background()
	c := e.client
	calls := map[string]func() error{
		"isolate short id":       func() error { _, err := c.Isolate(ctx, nil, "7b1f", Full, "c"); return err },
		"isolate path traversal": func() error { _, err := c.Isolate(ctx, nil, "../../api/x", Full, "c"); return err },
		"isolate bad type":       func() error { _, err := c.Isolate(ctx, nil, machineA, "full", "c"); return err },
		"isolate no comment":     func() error { _, err := c.Isolate(ctx, nil, machineA, Full, " "); return err },
		"unisolate bad id":       func() error { _, err := c.Unisolate(ctx, nil, machineA+"0", "c"); return err },
		"machine name as id":     func() error { _, err := c.Machine(ctx, "web-01"); return err },
		"action not guid":        func() error { _, err := c.MachineAction(ctx, "123"); return err },
		"cancel not guid":        func() error { _, err := c.CancelMachineAction(ctx, nil, actionA+"x", "c"); return err },
		"actions bad id":         func() error { _, err := c.MachineActions(ctx, "zz"); return err },
		"find empty":             func() error { _, err := c.FindMachinesByName(ctx, ""); return err },
		"find control char":      func() error { _, err := c.FindMachinesByName(ctx, "a\nb"); return err },
		"find too long":          func() error { _, err := c.FindMachinesByName(ctx, strings.Repeat("a", 256)); return err },
	}
	for name, f := range calls {
		err := f()
		var ae *APIError
		if !errors.Is(err, ErrBadRequest) || !errors.As(err, &ae) || ae.Status != 0 {
			t.Errorf("%s: err = %v, want a local ErrBadRequest", name, err)
		}
	}
	if n := len(e.mde.requests()); n != 0 {
		t.Errorf("MDE got %d requests, want 0", n)
	}
	if n := e.auth.tokens.Load(); n != 0 {
		t.Errorf("authority got %d token requests, want 0", n)
	}
}

// TestErrorMapping proves each MDE answer maps to the documented kind,
// keeping code, target (correlation id) and Retry-After.
func TestErrorMapping(t *testing.T) {
	retryDate := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := retryDate.Add(-7 * time.Second)
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		post       bool
		kind       error
		code       string
		target     string
		retryAfter time.Duration
		msgHas     string
	}{
		{"404 resource not found", 404, nil, mdeError("ResourceNotFound", "Machine 123 was not found", "corr-1"), false, ErrNotFound, "ResourceNotFound", "corr-1", 0, "was not found"},
		{"404 without body", 404, nil, "", false, ErrNotFound, "", "", 0, ""},
		{"400 with NotFound code", 400, nil, mdeError("NotFound", "gone", "corr-2"), true, ErrNotFound, "NotFound", "corr-2", 0, ""},
		{"400 active request", 400, nil, mdeError("ActiveRequestAlreadyExists", "Action is already in progress", "corr-3"), true, ErrAlreadyInProgress, "ActiveRequestAlreadyExists", "corr-3", 0, "already in progress"},
		{"400 message only", 400, nil, mdeError("BadRequest", "Action is already in progress", "corr-4"), true, ErrAlreadyInProgress, "BadRequest", "corr-4", 0, ""},
		{"400 other", 400, nil, mdeError("InvalidRequestBody", "Request body is incorrect", "corr-5"), true, ErrBadRequest, "InvalidRequestBody", "corr-5", 0, "incorrect"},
		{"400 guid", 400, nil, mdeError("BadRequest", "should be format of type 'Edm.Guid'.", "corr-6"), false, ErrBadRequest, "BadRequest", "corr-6", 0, "Edm.Guid"},
		{"401", 401, nil, mdeError("Unauthorized", "Unauthorized", "corr-7"), false, ErrUnauthorized, "Unauthorized", "corr-7", 0, ""},
		{"403 missing role", 403, nil, mdeError("Forbidden", "Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All, application roles: Machine.Isolate.", "corr-8"), true, ErrForbidden, "Forbidden", "corr-8", 0, "Machine.Isolate"},
		{"429 seconds", 429, map[string]string{"Retry-After": "42"}, mdeError("TooManyRequests", "slow down", "corr-9"), true, ErrThrottled, "TooManyRequests", "corr-9", 42 * time.Second, ""},
		{"429 date", 429, map[string]string{"Retry-After": retryDate.Format(http.TimeFormat)}, "", true, ErrThrottled, "", "", 7 * time.Second, ""},
		{"429 missing", 429, nil, "", true, ErrThrottled, "", "", 0, ""},
		{"500 post", 500, nil, mdeError("InternalServerError", "boom", "corr-10"), true, ErrOutcomeUnknown, "InternalServerError", "corr-10", 0, ""},
		{"503 post html", 503, nil, "<html>busy</html>", true, ErrOutcomeUnknown, "", "", 0, ""},
		{"307 post", 307, map[string]string{"Location": "https://elsewhere.example/x"}, "", true, ErrOutcomeUnknown, "", "", 0, ""},
		{"500 get", 500, nil, mdeError("InternalServerError", "boom", "corr-11"), false, ErrUnavailable, "InternalServerError", "corr-11", 0, ""},
		{"307 get", 307, map[string]string{"Location": "https://elsewhere.example/x"}, "", false, ErrUnavailable, "", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				reply(w, tt.status, tt.body)
			}, func(c *Config) {
				c.MaxGetAttempts = 1 // mapping only; retries are tested elsewhere
				c.Now = func() time.Time { return now }
			})
			var err error
			if tt.post {
				_, err = e.client.Unisolate(context.Background(), nil, machineA, "c")
			} else {
				_, err = e.client.MachineAction(context.Background(), actionA)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if !errors.Is(err, tt.kind) || ae.Kind != tt.kind {
				t.Errorf("kind = %v, want %v (err %v)", ae.Kind, tt.kind, err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || ae.Target != tt.target || ae.RetryAfter != tt.retryAfter {
				t.Errorf("got status %d code %q target %q retryAfter %v; want %d %q %q %v",
					ae.Status, ae.Code, ae.Target, ae.RetryAfter, tt.status, tt.code, tt.target, tt.retryAfter)
			}
			if !strings.Contains(ae.Message, tt.msgHas) || !strings.Contains(err.Error(), tt.target) {
				t.Errorf("error text %q lacks %q or the correlation id", err.Error(), tt.msgHas)
			}
			want := 1
			switch {
			case tt.status == http.StatusUnauthorized:
				want = 2 // once more with a fresh token (TestUnauthorizedResendsWithFreshToken)
			case tt.status == http.StatusNotFound && !tt.post:
				want = 2 // read once more: MDE answers spurious 404s
			}
			if n := len(e.mde.requests()); n != want {
				t.Errorf("MDE got %d requests, want %d (no other retry, no redirect followed)", n, want)
			}
		})
	}
}

// TestGetRetriesServerErrors proves a GET retries 5xx with capped,
// jittered backoff and succeeds, while each attempt passes the Gate.
func TestGetRetriesServerErrors(t *testing.T) {
	gate := &countingGate{}
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n < 3 {
			reply(w, http.StatusServiceUnavailable, mdeError("ServiceUnavailable", "later", "x"))
			return
		}
		reply(w, 200, actionJSON(actionA, StatusSucceeded, "2024-05-01T10:00:00Z"))
	}, func(c *Config) {
		c.Gate = gate
		c.BaseBackoff = 20 * time.Millisecond
		c.MaxBackoff = 30 * time.Millisecond
		c.Jitter = func() float64 { return 0.25 }
	})
	a, err := e.client.MachineAction(context.Background(), actionA)
	if err != nil || a.Status != StatusSucceeded {
		t.Fatalf("MachineAction = %+v, %v", a, err)
	}
	if n := len(e.mde.requests()); n != 3 {
		t.Errorf("MDE got %d requests, want 3", n)
	}
	// attempt 1: 20ms → 10 + 0.25·10; attempt 2: 40ms capped to 30 → 15 + 0.25·15.
	want := []time.Duration{12500 * time.Microsecond, 18750 * time.Microsecond}
	if got := e.sleeps.waits(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backoff waits = %v, want %v", got, want)
	}
	admits, _, _ := gate.snapshot()
	if fmt.Sprint(admits) != fmt.Sprint([]string{BudgetMachineActions, BudgetMachineActions, BudgetMachineActions}) {
		t.Errorf("gate admits = %v, want one per attempt", admits)
	}
	if !strings.Contains(e.logs.String(), "retrying") {
		t.Errorf("no retry logged: %s", e.logs.String())
	}
}

// TestGetGivesUpAfterMaxAttempts proves the attempt cap.
func TestGetGivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, http.StatusBadGateway, "")
	}, nil)
	_, err := e.client.Machine(context.Background(), machineA)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n := len(e.mde.requests()); n != 3 {
		t.Errorf("MDE got %d requests, want 3", n)
	}
}

// TestPostNeverRetried proves POSTs are sent once whatever the answer.
func TestPostNeverRetried(t *testing.T) {
	for _, tc := range []struct {
		status int
		hdr    string
		kind   error
	}{
		{500, "", ErrOutcomeUnknown},
		{503, "", ErrOutcomeUnknown},
		{429, "1", ErrThrottled},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			gate := &countingGate{}
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if tc.hdr != "" {
					w.Header().Set("Retry-After", tc.hdr)
				}
				reply(w, tc.status, "")
			}, func(c *Config) { c.Gate = gate })
			_, err := e.client.Isolate(context.Background(), nil, machineA, Full, "c")
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			if n := len(e.mde.requests()); n != 1 {
				t.Errorf("MDE got %d requests, want exactly 1", n)
			}
			if w := e.sleeps.waits(); len(w) != 0 {
				t.Errorf("POST waited %v; it must return at once", w)
			}
			admits, throttled, budgets := gate.snapshot()
			if len(admits) != 1 || admits[0] != BudgetIsolate {
				t.Errorf("gate admits = %v", admits)
			}
			if tc.status == 429 && (fmt.Sprint(throttled) != "[1s]" || budgets[0] != BudgetIsolate) {
				t.Errorf("gate throttled = %v %v, want [1s] for %s", throttled, budgets, BudgetIsolate)
			}
		})
	}
}

// TestRetryAfterOnGet proves a throttled GET waits exactly Retry-After
// (seconds or HTTP-date) before its next attempt, tells the Gate, and does
// not wait when Retry-After exceeds the cap or the ctx deadline.
func TestRetryAfterOnGet(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		header    string
		deadline  time.Duration // 0: none
		wantWaits []time.Duration
		wantErr   error
		wantReqs  int
	}{
		{"seconds", "3", 0, []time.Duration{3 * time.Second}, nil, 2},
		{"http date", now.Add(4 * time.Second).Format(http.TimeFormat), 0, []time.Duration{4 * time.Second}, nil, 2},
		{"over cap", "31", 0, nil, ErrThrottled, 1},
		{"past deadline", "3", 2 * time.Second, nil, ErrThrottled, 1},
		{"missing header uses backoff", "", 0, []time.Duration{7500 * time.Microsecond}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := &countingGate{}
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					if tt.header != "" {
						w.Header().Set("Retry-After", tt.header)
					}
					reply(w, 429, mdeError("TooManyRequests", "quota", "c"))
					return
				}
				reply(w, 200, `{"value":[]}`)
			}, func(c *Config) {
				c.Gate = gate
				c.Now = func() time.Time { return now }
			})
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, err := e.client.MachineActions(ctx, machineA)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := e.sleeps.waits(); fmt.Sprint(got) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tt.wantWaits)
			}
			if n := len(e.mde.requests()); n != tt.wantReqs {
				t.Errorf("MDE got %d requests, want %d", n, tt.wantReqs)
			}
			e.sleeps.mu.Lock()
			at := append([]int(nil), e.sleeps.at...)
			e.sleeps.mu.Unlock()
			for _, n := range at {
				if n != 1 {
					t.Errorf("a wait began after %d requests; the retry must come only after the wait", n)
				}
			}
			_, throttled, _ := gate.snapshot()
			if len(throttled) != 1 {
				t.Errorf("gate told of %d throttles, want 1", len(throttled))
			}
			if admits, _, _ := gate.snapshot(); len(admits) != tt.wantReqs {
				t.Errorf("gate admits = %d, want one per request (%d)", len(admits), tt.wantReqs)
			}
		})
	}
}

// TestRetryAfterRealWait proves with the real clock that the retry
// arrives no sooner than Retry-After.
func TestRetryAfterRealWait(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			reply(w, 429, "")
			return
		}
		reply(w, 200, `{"id":"`+machineA+`"}`)
	}, nil)
	e.client.sleep = sleepCtx
	if _, err := e.client.Machine(context.Background(), machineA); err != nil {
		t.Fatalf("Machine: %v", err)
	}
	reqs := e.mde.requests()
	if len(reqs) != 2 {
		t.Fatalf("MDE got %d requests, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retry came %v after the 429, before Retry-After 1s", gap)
	}
}

// TestDeadlines proves the caller's deadline bounds a hanging MDE: a GET is
// ErrUnavailable, a POST whose request was sent is ErrOutcomeUnknown, and
// both match context.DeadlineExceeded.
func TestDeadlines(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, nil)
	defer close(release)
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
		kind error
	}{
		{"get", func(ctx context.Context) error { _, err := e.client.Machine(ctx, machineA); return err }, ErrUnavailable},
		{"post", func(ctx context.Context) error { _, err := e.client.Isolate(ctx, nil, machineA, Full, "c"); return err }, ErrOutcomeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.mde.requests())
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := tc.call(ctx)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("took %v; the 300ms deadline was not honoured", took)
			}
			if !errors.Is(err, tc.kind) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want %v and DeadlineExceeded", err, tc.kind)
			}
			if n := len(e.mde.requests()) - before; n != 1 {
				t.Errorf("MDE got %d requests, want 1", n)
			}
		})
	}
}

// TestPostNotSentIsUnavailable proves a POST that never left (connection
// refused) is ErrUnavailable, not ErrOutcomeUnknown: nothing to reconcile.
func TestPostNotSentIsUnavailable(t *testing.T) {
	dead := newFakeMDE(t, nil)
	url := dead.srv.URL
	dead.srv.Close()
	e := newEnv(t, nil, func(c *Config) { c.APIURL = url })
	_, err := e.client.Isolate(context.Background(), nil, machineA, Full, "c")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrUnavailable only", err)
	}
	mustNotContainSecrets(t, "error", err.Error())
}

// TestTokenReuse proves MSAL's cache serves many (concurrent) calls from
// one token request.
func TestTokenReuse(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"id":"`+machineA+`"}`)
	}, nil)
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatalf("Token: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := e.client.Machine(context.Background(), machineA)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Machine: %v", err)
		}
	}
	if n := e.auth.tokens.Load(); n != 1 {
		t.Errorf("authority got %d token requests, want 1", n)
	}
	if n := len(e.mde.requests()); n != 20 {
		t.Errorf("MDE got %d requests, want 20", n)
	}
}

// TestGateRefusalSendsNothing proves a Gate error stops the call before
// any HTTP request and stays visible through errors.Is.
func TestGateRefusalSendsNothing(t *testing.T) {
	gateErr := errors.New("redis is down")
	gate := &countingGate{err: gateErr}
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, "{}") },
		func(c *Config) { c.Gate = gate })
	for name, call := range map[string]func() error{
		"isolate": func() error { _, err := e.client.Isolate(context.Background(), nil, machineA, Full, "c"); return err },
		"get":     func() error { _, err := e.client.Machine(context.Background(), machineA); return err },
		"find":    func() error { _, err := e.client.FindMachinesByName(context.Background(), "web-01"); return err },
	} {
		err := call()
		if !errors.Is(err, gateErr) || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) {
			t.Errorf("%s: err = %v, want the gate's error as ErrUnavailable", name, err)
		}
		if !strings.Contains(err.Error(), "redis is down") {
			t.Errorf("%s: error text %q hides the gate's reason", name, err)
		}
	}
	if n := len(e.mde.requests()); n != 0 {
		t.Errorf("MDE got %d requests, want 0", n)
	}
	admits, _, _ := gate.snapshot()
	if len(admits) != 3 {
		t.Errorf("admits = %v, want one per call (no retry of a refusal)", admits)
	}
}

// TestBudgets proves each operation asks the Gate for its own budget.
func TestBudgets(t *testing.T) {
	gate := &countingGate{}
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/api/machines" || r.URL.Path == "/api/machineactions" {
			reply(w, 200, `{"value":[{"id":"`+machineA+`"}]}`)
			return
		}
		reply(w, 200, `{}`)
	}, func(c *Config) { c.Gate = gate })
	ctx := context.Background()
	c := e.client
	steps := []struct {
		budget string
		call   func() error
	}{
		{BudgetIsolate, func() error { _, err := c.Isolate(ctx, nil, machineA, Full, "c"); return err }},
		{BudgetUnisolate, func() error { _, err := c.Unisolate(ctx, nil, machineA, "c"); return err }},
		{BudgetCancel, func() error { _, err := c.CancelMachineAction(ctx, nil, actionA, "c"); return err }},
		{BudgetMachineActions, func() error { _, err := c.MachineAction(ctx, actionA); return err }},
		{BudgetMachineActions, func() error { _, err := c.MachineActions(ctx, machineA); return err }},
		{BudgetMachines, func() error { _, err := c.Machine(ctx, machineA); return err }},
		{BudgetMachines, func() error { _, err := c.FindMachinesByName(ctx, "web-01.contoso.local"); return err }},
	}
	var want []string
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.budget, err)
		}
		want = append(want, s.budget)
	}
	if admits, _, _ := gate.snapshot(); fmt.Sprint(admits) != fmt.Sprint(want) {
		t.Errorf("admits = %v, want %v", admits, want)
	}
}

// TestResponseTooLarge proves the body read is bounded.
func TestResponseTooLarge(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"id":"`+strings.Repeat("a", MaxResponseBytes)+`"}`)
	}, func(c *Config) { c.MaxGetAttempts = 1 })
	_, err := e.client.Machine(context.Background(), machineA)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want ErrUnavailable for an oversized body", err)
	}
}

// TestUndecodablePostReply proves a 2xx POST reply we cannot read is
// ErrOutcomeUnknown: the action probably exists.
func TestUndecodablePostReply(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 201, `<html>`) }, nil)
	_, err := e.client.Isolate(context.Background(), nil, machineA, Full, "c")
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
}

// TestAnswerCutByDeadline: an empty 2xx body read after the caller's
// deadline (net/http can hand one over as the request is cancelled) is
// reported as the deadline, not as MDE sending JSON the client cannot read.
func TestAnswerCutByDeadline(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	var out Machine
	err := e.client.answer(ctx, call{op: "get machine", method: http.MethodGet}, &http.Response{StatusCode: 200}, nil, nil, &out)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	err = e.client.answer(context.Background(), call{op: "get machine", method: http.MethodGet}, &http.Response{StatusCode: 200}, nil, nil, &out)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without a deadline: err = %v, want ErrUnavailable only", err)
	}
}
