package fakemde_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
)

// manualClock is a clock the test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestEnforceLimitsExact: both windows hold exactly (a call passes when
// fewer than the limit passed in the trailing window, refused calls do
// not count, a call exactly one window later passes), per API, with and
// without Retry-After, and 429s are counted per op.
func TestEnforceLimitsExact(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, withRA := range []bool{true, false} {
		clock := &manualClock{t: t0}
		f := fakemde.New(t, clock.Now)
		f.EnforceLimits(fakemde.Limits{RetryAfter: withRA, Budgets: map[string]fakemde.Limit{
			defender.BudgetMachines: {Short: fakemde.Window{Calls: 3, Length: 2 * time.Second}, Long: fakemde.Window{Calls: 5, Length: 20 * time.Second}},
		}})
		c := newClient(t, f)
		steps := []struct {
			at   time.Duration
			pass bool
			ra   time.Duration // Retry-After when refused
		}{
			{0, true, 0}, {0, true, 0}, {0, true, 0},
			{0, false, 2 * time.Second},
			{1999 * time.Millisecond, false, time.Second}, // rounded up
			{2 * time.Second, true, 0},                    // t0's calls just left the short window
			{2 * time.Second, true, 0},
			{2 * time.Second, false, 18 * time.Second}, // the long window is full
			{19999 * time.Millisecond, false, time.Second},
			{20 * time.Second, true, 0},
		}
		refused := 0
		for i, s := range steps {
			clock.Set(t0.Add(s.at))
			_, err := c.Machine(context.Background(), defender.SimWeb01)
			var ae *defender.APIError
			switch {
			case s.pass && err != nil:
				t.Fatalf("RetryAfter=%v step %d at +%v: %v; want it to pass", withRA, i, s.at, err)
			case !s.pass && (!errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests):
				t.Fatalf("RetryAfter=%v step %d at +%v: %v; want 429", withRA, i, s.at, err)
			case !s.pass && withRA && ae.RetryAfter != s.ra, !s.pass && !withRA && ae.RetryAfter != 0:
				t.Fatalf("RetryAfter=%v step %d: Retry-After %v, want %v", withRA, i, ae.RetryAfter, s.ra)
			}
			if !s.pass {
				refused++
			}
		}
		if f.Throttled(fakemde.OpMachine) != refused || f.Count(fakemde.OpMachine) != len(steps) {
			t.Fatalf("counters: %d 429s of %d calls; want %d of %d", f.Throttled(fakemde.OpMachine), f.Count(fakemde.OpMachine), refused, len(steps))
		}
		// Another API has its own budget (here none).
		for range 6 {
			if _, err := c.MachineActions(context.Background(), defender.SimWeb01); err != nil {
				t.Fatalf("machineactions limited by the machines budget: %v", err)
			}
		}
		// Ending enforcement lets every call through.
		f.EnforceLimits(fakemde.Limits{})
		for range 6 {
			if _, err := c.Machine(context.Background(), defender.SimWeb01); err != nil {
				t.Fatalf("after enforcement ended: %v", err)
			}
		}
	}
}

// TestListPagingAndTop: $top bounds the whole answer, pages follow
// @odata.nextLink, and a bad $top is an ODataError.
func TestListPagingAndTop(t *testing.T) {
	f := fakemde.New(t, nil)
	c := newClient(t, f)
	ctx := context.Background()
	for _, id := range []string{defender.SimWeb01, defender.SimWeb02, defender.SimDB01} {
		if _, err := c.Isolate(ctx, nil, id, defender.Full, "x"); err != nil && !errors.Is(err, defender.ErrBadRequest) {
			t.Fatal(err)
		}
	}
	f.SetPageSize(1)
	acts, err := c.MachineActionsByID(ctx, actionIDs(t, f))
	if err != nil || len(acts) != 3 || f.Count(fakemde.OpActions) != 3 {
		t.Fatalf("%d actions, %v in %d calls; want 3 pages", len(acts), err, f.Count(fakemde.OpActions))
	}
	// Two machines, up to 2 actions each: $top=4, and one page (the
	// pre-check never follows a page).
	f.SetPageSize(0)
	if acts, err := c.ActionsForMachines(ctx, []string{defender.SimWeb01, defender.SimDB01}, 2); err != nil || len(acts) != 2 {
		t.Fatalf("ActionsForMachines = %d, %v", len(acts), err)
	}
	req := f.Requests(fakemde.OpActions)
	if q := req[len(req)-1].Query; !strings.HasSuffix(q, "&$top=4") {
		t.Fatalf("query %s", q)
	}
	hc := f.HTTPClient()
	r, _ := http.NewRequest(http.MethodGet, f.URL()+"/api/machines?$top=10001", nil)
	r.Header.Set("Authorization", "Bearer "+fakemde.Token)
	resp, err := hc.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("$top=10001: HTTP %d, want 400", resp.StatusCode)
	}
}

func actionIDs(t *testing.T, f *fakemde.Server) []string {
	t.Helper()
	var ids []string
	for _, a := range f.Sim.Actions() {
		ids = append(ids, a.ID)
	}
	if len(ids) != 3 {
		t.Fatalf("%d actions, want 3", len(ids))
	}
	return ids
}

// TestIdealSpan: the fastest schedule under both windows, as the
// benchmarks' efficiency divides by it.
func TestIdealSpan(t *testing.T) {
	l := fakemde.Limit{Short: fakemde.Window{Calls: 20, Length: 2 * time.Second}, Long: fakemde.Window{Calls: 150, Length: 20 * time.Second}}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, 0}, {1, 0}, {20, 0}, {21, 2 * time.Second}, {150, 14 * time.Second}, {151, 20 * time.Second}, {300, 34 * time.Second}} {
		if got := l.IdealSpan(c.n); got != c.want {
			t.Errorf("IdealSpan(%d) = %s; want %s", c.n, got, c.want)
		}
	}
}
