package ops

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/redistest"
)

// TestReadyzAnswersWhileRedisIsFrozen: a frozen Redis (SIGSTOP: it accepts
// connections and never answers) makes /readyz say "not ready" within a
// second, with the default check timeout, instead of leaving the probe
// without an answer.
func TestReadyzAnswersWhileRedisIsFrozen(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	checks := []Check{
		{Name: "state", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		ok("slack"),
	}
	srv := httptest.NewServer(NewHandler(checks, prometheus.NewRegistry(), zerolog.Nop(), testOptions))
	defer srv.Close()
	probe := &http.Client{Timeout: time.Second} // what a probe or load balancer waits
	get := func() (int, string) {
		t.Helper()
		resp, err := probe.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatalf("/readyz did not answer within 1 s: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("before freezing: %d %s", code, body)
	}
	rs.Freeze()
	t.Cleanup(rs.Thaw)
	for range 3 { // repeated probes must not pile up behind the stuck one
		code, body := get()
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "fail state") || !strings.Contains(body, "ok slack") {
			t.Fatalf("frozen Redis: %d %q, want 503 naming the state check", code, body)
		}
	}
	rs.Thaw()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get()
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready again after Redis thawed")
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}
