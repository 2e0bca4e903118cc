package defender

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestActionsSinceQuery: the one look-up's exact filter, as sent: the
// time in UTC to the second, rounded down, unquoted; spaces as %20.
func TestActionsSinceQuery(t *testing.T) {
	tests := []struct {
		name   string
		typ    string
		since  time.Time
		filter string
	}{
		{"whole second", "Isolate", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
			"type eq 'Isolate' and creationDateTimeUtc ge 2026-12-01T10:00:00Z"},
		{"fraction rounded down", "Unisolate", time.Date(2026, 12, 1, 10, 0, 59, 999_999_999, time.UTC),
			"type eq 'Unisolate' and creationDateTimeUtc ge 2026-12-01T10:00:59Z"},
		{"zone converted to UTC", "Isolate", time.Date(2026, 12, 1, 0, 30, 5, 1, time.FixedZone("x", 2*3600)),
			"type eq 'Isolate' and creationDateTimeUtc ge 2026-11-30T22:30:05Z"},
		{"type as given", "RunAntiVirusScan", time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
			"type eq 'RunAntiVirusScan' and creationDateTimeUtc ge 2027-01-02T03:04:05Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{"value":[]}`) }, nil)
			acts, err := e.client.ActionsSince(context.Background(), tt.typ, tt.since)
			reqs := e.mde.requests()
			if err != nil || acts == nil || len(acts) != 0 || len(reqs) != 1 {
				t.Fatalf("%v, %v after %d requests; want an empty list after one", acts, err, len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodGet || r.Path != "/api/machineactions" || r.Filter != tt.filter {
				t.Errorf("%s %s filter %q; want GET /api/machineactions filter %q", r.Method, r.Path, r.Filter, tt.filter)
			}
			// Only the spaces need escaping; ' and : stay as they are.
			if want := "$filter=" + strings.ReplaceAll(tt.filter, " ", "%20"); r.RawQuery != want {
				t.Errorf("raw query %q, want %q", r.RawQuery, want)
			}
		})
	}
}

// TestActionsSinceRefused: a type that is not letters only, or no start
// time, is ErrBadRequest before any call.
func TestActionsSinceRefused(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		typ   string
		since time.Time
	}{
		{"", at}, {"Isolate'", at}, {"Isolate' or type eq 'Unisolate", at}, {"Iso late", at},
		{"Isolé", at}, {"Isolate2", at}, {"Run_Scan", at}, {string(make([]byte, 65)), at},
		{"Isolate", time.Time{}},
	}
	e := newEnv(t, nil, nil)
	for _, tt := range tests {
		if _, err := e.client.ActionsSince(context.Background(), tt.typ, tt.since); !errors.Is(err, ErrBadRequest) {
			t.Errorf("ActionsSince(%q, %v) = %v; want ErrBadRequest", tt.typ, tt.since, err)
		}
	}
	if n := len(e.mde.requests()); n != 0 {
		t.Fatalf("%d requests; want none", n)
	}
}

// TestActionsSinceNotFound: MDE's 404 is an empty list after one call
// (the watcher's next round is the second read); other errors pass up.
func TestActionsSinceNotFound(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 404, mdeError("ResourceNotFound", "no actions", ""))
	}, nil)
	acts, err := e.client.ActionsSince(context.Background(), "Isolate", at)
	if err != nil || acts == nil || len(acts) != 0 || len(e.mde.requests()) != 1 {
		t.Fatalf("%v, %v after %d requests; want an empty list after one", acts, err, len(e.mde.requests()))
	}
	e.mde.handle = func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 403, mdeError("Forbidden", "missing role", ""))
	}
	if _, err := e.client.ActionsSince(context.Background(), "Isolate", at); !errors.Is(err, ErrForbidden) {
		t.Fatalf("%v; want ErrForbidden", err)
	}
}
