package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func ok(name string) Check {
	return Check{Name: name, Func: func(context.Context) error { return nil }}
}

func failing(name string, err error) Check {
	return Check{Name: name, Func: func(context.Context) error { return err }}
}

func TestHealthz(t *testing.T) {
	// Liveness must not run the readiness checks: a Redis outage must not
	// get the pod killed.
	called := false
	h := NewHandler([]Check{{Name: "redis", Func: func(context.Context) error { called = true; return errors.New("down") }}},
		prometheus.NewRegistry(), zerolog.Nop(), testOptions)
	code, body := get(t, h, http.MethodGet, "/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
	}
	if called {
		t.Fatal("/healthz ran a readiness check")
	}
}

func TestRoutes(t *testing.T) {
	h := NewHandler(nil, prometheus.NewRegistry(), zerolog.Nop(), testOptions)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", 200},
		{http.MethodHead, "/healthz", 200},
		{http.MethodGet, "/readyz", 200},
		{http.MethodGet, "/metrics", 200},
		{http.MethodPost, "/healthz", 405},
		{http.MethodPost, "/readyz", 405},
		{http.MethodGet, "/", 404},
		{http.MethodGet, "/debug/pprof/", 404},
	}
	for _, tt := range tests {
		if code, _ := get(t, h, tt.method, tt.path); code != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, code, tt.want)
		}
	}
}

func TestReadyz(t *testing.T) {
	secretErr := errors.New("auth failed for xoxb-1234-5678-abcdef with Bearer eyJhbGciOi.x.y at redis://:hunter2@redis:6379")
	tests := []struct {
		name     string
		checks   []Check
		wantCode int
		want     []string // lines that must appear
		notWant  []string // substrings that must not appear
	}{
		{"no checks", nil, 200, []string{"ok"}, nil},
		{"all ok", []Check{ok("slack"), ok("redis"), ok("azure")}, 200,
			[]string{"ok azure", "ok redis", "ok slack"}, []string{"fail"}},
		{"one fails", []Check{ok("slack"), failing("redis", errors.New("dial tcp 10.0.0.1:6379: connection refused")), ok("azure")}, 503,
			[]string{"ok azure", "fail redis: dial tcp 10.0.0.1:6379: connection refused", "ok slack"}, nil},
		{"all fail", []Check{failing("slack", errors.New("not connected")), failing("azure", errors.New("token: invalid_client"))}, 503,
			[]string{"fail azure: token: invalid_client", "fail slack: not connected"}, []string{"ok "}},
		{"secret redacted", []Check{failing("azure", secretErr)}, 503,
			[]string{"fail azure: auth failed for [redacted] with Bearer [redacted] at redis://[redacted]@redis:6379"},
			[]string{"xoxb-", "hunter2", "eyJ"}},
		{"multi-line reason cut", []Check{failing("mde", errors.New("first line\nresponse body: {\"secret\":1}"))}, 503,
			[]string{"fail mde: first line"}, []string{"response body"}},
		{"panicking check", []Check{{Name: "redis", Func: func(context.Context) error { panic("boom") }}}, 503,
			[]string{"fail redis: check panicked"}, []string{"boom"}},
		{"nil func fails closed", []Check{{Name: "slack"}}, 503, []string{"fail slack: no check function configured"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler(tt.checks, prometheus.NewRegistry(), zerolog.Nop(), testOptions)
			code, body := get(t, h, http.MethodGet, "/readyz")
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d; body:\n%s", code, tt.wantCode, body)
			}
			lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("body lacks line %q; body:\n%s", w, body)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(body, nw) {
					t.Errorf("body contains %q; body:\n%s", nw, body)
				}
			}
		})
	}
}

func TestReadyzTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	checks := []Check{
		// Ignores its context: must still be reported, not hang the probe.
		{Name: "stuck", Func: func(context.Context) error { <-release; return nil }},
		// Honours its context.
		{Name: "slow", Func: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		ok("fine"),
	}
	h := NewHandler(checks, prometheus.NewRegistry(), zerolog.Nop(), Options{CheckTimeout: 50 * time.Millisecond})
	start := time.Now()
	code, body := get(t, h, http.MethodGet, "/readyz")
	if code != 503 {
		t.Fatalf("code = %d, want 503; body:\n%s", code, body)
	}
	for _, w := range []string{"fail stuck: timed out after 50ms", "fail slow: timed out after 50ms", "ok fine"} {
		if !strings.Contains(body, w) {
			t.Errorf("body lacks %q; body:\n%s", w, body)
		}
	}
	// Generous bound: the point is that it does not wait for "stuck".
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("/readyz took %s with a 50ms check timeout", d)
	}
}

// TestReadyzConcurrent proves the checks run at the same time: each waits
// for the other to start, so sequential execution would time out.
func TestReadyzConcurrent(t *testing.T) {
	aStarted, bStarted := make(chan struct{}), make(chan struct{})
	wait := func(mine, other chan struct{}) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			close(mine)
			select {
			case <-other:
				return nil
			case <-ctx.Done():
				return errors.New("ran alone")
			}
		}
	}
	checks := []Check{{Name: "a", Func: wait(aStarted, bStarted)}, {Name: "b", Func: wait(bStarted, aStarted)}}
	h := NewHandler(checks, prometheus.NewRegistry(), zerolog.Nop(), Options{CheckTimeout: 10 * time.Second})
	if code, body := get(t, h, http.MethodGet, "/readyz"); code != 200 {
		t.Fatalf("code = %d, want 200; body:\n%s", code, body)
	}
}

// TestNewServer runs the real *http.Server on loopback and checks the
// timeouts that protect it from slow clients are set.
func TestNewServer(t *testing.T) {
	srv := NewServer("127.0.0.1:0", []Check{ok("redis")}, prometheus.NewRegistry(), zerolog.Nop(), testOptions)
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 {
		t.Fatalf("server timeouts not all set: %+v", srv)
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain error", "plain error"},
		{"token xoxb-123-456-abc rejected", "token [redacted] rejected"},
		{"app token xapp-1-A01-123-abcdef bad", "app token [redacted] bad"},
		{"prefixedxoxp-1-2", "prefixed[redacted]"},
		{"Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"},
		{"dial redis://user:pa55@host:6379/0", "dial redis://[redacted]@host:6379/0"},
		{"rediss://:pw@h:6380", "rediss://[redacted]@h:6380"},
		{"POST client_secret=s3cr3t&grant_type=x", "POST client_secret=[redacted]&grant_type=x"},
		{"password=abc token=def", "password=[redacted] token=[redacted]"},
		{"jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "jwt [redacted]"},
		{"line one\nline two", "line one"},
		{strings.Repeat("é", 400), strings.Repeat("é", maxReason/2) + "…"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"", "xoxb-1-2", "a\nb", "redis://u:p@h", "Bearer x", "client_secret=1", strings.Repeat("x", 500)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s)
		if strings.ContainsAny(out, "\r\n") {
			t.Fatalf("Redact(%q) = %q has a line break", s, out)
		}
		if len(out) > maxReason+len("…") {
			t.Fatalf("Redact(%q) has %d bytes, cap %d", s, len(out), maxReason)
		}
		if reSlackToken.MatchString(out) {
			t.Fatalf("Redact(%q) = %q still holds a Slack token", s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("Redact(%q) = %q is not valid UTF-8", s, out)
		}
	})
}

// Example of wiring: the checks are closures over the real clients.
func ExampleNewServer() {
	reg := prometheus.NewRegistry()
	srv := NewServer(":8080", []Check{
		{Name: "redis", Func: func(ctx context.Context) error { return nil /* rdb.Ping(ctx).Err() */ }},
	}, reg, zerolog.Nop(), testOptions)
	fmt.Println(srv.Addr)
	// Output: :8080
}

func TestProbeLocal(t *testing.T) {
	h := NewHandler([]Check{failing("redis", errors.New("connection refused"))}, prometheus.NewRegistry(), zerolog.Nop(), testOptions)
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		addr, path string
		wantErr    string // "" = success
	}{
		{":" + port, "/healthz", ""},
		{"0.0.0.0:" + port, "/healthz", ""},
		{"[::]:" + port, "/healthz", ""},
		{"127.0.0.1:" + port, "/healthz", ""},
		{":" + port, "/readyz", "HTTP 503: fail redis: connection refused"},
		{":" + port, "/nope", "HTTP 404"},
		{"8080", "/healthz", "is not host:port"},
	}
	for _, tt := range tests {
		err := ProbeLocal(ctx, srv.Client(), tt.addr, tt.path)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ProbeLocal(%q, %q) = %v, want nil", tt.addr, tt.path, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ProbeLocal(%q, %q) = %v, want error containing %q", tt.addr, tt.path, err, tt.wantErr)
		}
	}
	srv.Close()
	if err := ProbeLocal(ctx, nil, ":"+port, "/healthz"); err == nil {
		t.Error("ProbeLocal succeeded against a closed server")
	}
}
