package defender

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOversizedListNotRetried: an answer over MaxResponseBytes is not sent
// again (it would only come again), even though GETs retry.
func TestOversizedListNotRetried(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"value":[{"id":"`+strings.Repeat("a", MaxResponseBytes)+`"}]}`)
	}, nil)
	_, err := e.client.ActionsForMachines(context.Background(), []string{machineA}, 5)
	if !errors.Is(err, ErrUnavailable) || len(e.mde.requests()) != 1 {
		t.Fatalf("%v after %d requests; want ErrUnavailable after one", err, len(e.mde.requests()))
	}
}

// TestNextLinkStaysHome: an @odata.nextLink to another host or collection
// is not followed (it would receive the bearer token); a relative one is.
func TestNextLinkStaysHome(t *testing.T) {
	for _, tt := range []struct {
		link   string
		follow bool
	}{
		{"https://evil.example/api/machines?$skiptoken=1", false},
		{"/api/machineactions?$skiptoken=1", false},
		{"http://{host}/api/machines?$skiptoken=1", false}, // plain HTTP
		{"https://user@{host}/api/machines?$skiptoken=1", false},
		{"/api/machines?$skiptoken=1", true},
		{"https://{host}/api/machines?$skiptoken=1", true},
	} {
		t.Run(tt.link, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.mde.handle = func(w http.ResponseWriter, r *http.Request, n int) {
				if n > 1 {
					reply(w, 200, `{"value":[{"id":"`+machineA+`"}]}`)
					return
				}
				link := strings.ReplaceAll(tt.link, "{host}", strings.TrimPrefix(e.mde.srv.URL, "https://"))
				reply(w, 200, `{"value":[],"@odata.nextLink":"`+link+`"}`)
			}
			ms, err := e.client.MachinesByTag(context.Background(), "t")
			reqs := e.mde.requests()
			switch {
			case tt.follow && (err != nil || len(ms) != 1 || len(reqs) != 2 || reqs[1].RawQuery != "$skiptoken=1"):
				t.Fatalf("%v, %v after %v; want the second page", ms, err, reqs)
			case !tt.follow && (!errors.Is(err, ErrUnavailable) || len(reqs) != 1):
				t.Fatalf("%v after %d requests; want ErrUnavailable and nothing more", err, len(reqs))
			}
		})
	}
}

// TestNotFoundDelay: a GET answered 404 is sent once more after
// NotFoundRetryDelay, not counted
// among the GET retries; a POST's 404 is final.
func TestNotFoundDelay(t *testing.T) {
	for _, tt := range []struct {
		name  string
		delay time.Duration
		want  time.Duration
	}{{"production", 2 * time.Second, 2 * time.Second}, {"configured", 50 * time.Millisecond, 50 * time.Millisecond}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 || r.Method == http.MethodPost {
					reply(w, 404, mdeError("ResourceNotFound", "Machine was not found", "t"))
					return
				}
				reply(w, 200, `{"id":"`+machineA+`"}`)
			}, func(c *Config) { c.MaxGetAttempts = 1; c.NotFoundRetryDelay = tt.delay })
			m, err := e.client.Machine(context.Background(), machineA)
			if err != nil || m.ID != machineA || len(e.mde.requests()) != 2 {
				t.Fatalf("%v, %v after %d requests; want the machine after 2", m, err, len(e.mde.requests()))
			}
			if e.sleeps.d[0] != tt.want || len(e.sleeps.d) != 1 {
				t.Fatalf("waits %v, want [%v]", e.sleeps.d, tt.want)
			}
			if _, err := e.client.Isolate(context.Background(), nil, machineA, Full, "c"); !errors.Is(err, ErrNotFound) || len(e.mde.requests()) != 3 {
				t.Fatalf("POST: %v after %d requests; want ErrNotFound, sent once", err, len(e.mde.requests()))
			}
		})
	}
}
