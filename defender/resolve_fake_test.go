package defender_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
)

// budgetGate counts admissions by budget: one per HTTP request.
type budgetGate struct {
	mu     sync.Mutex
	admits map[string]int
}

func (g *budgetGate) Admit(_ context.Context, budget string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.admits == nil {
		g.admits = map[string]int{}
	}
	g.admits[budget]++
	return nil
}

func (g *budgetGate) Throttled(context.Context, string, time.Duration) {}

func (g *budgetGate) count(budget string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.admits[budget]
}

func fakeClient(t *testing.T, f *fakemde.Server, gate defender.Gate) *defender.Client {
	t.Helper()
	c, err := defender.New(defender.Config{
		APIURL: f.URL(), AuthorityHost: f.URL(), TenantID: fakemde.TenantID,
		ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret,
		HTTPClient: f.HTTPClient(), MaxGetAttempts: 1, Gate: gate,
		NotFoundRetryDelay: 10 * time.Millisecond, UserAgent: "isolate-bot/test",
		BaseBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		MaxRetryAfterWait: 30 * time.Second, AttemptTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fleet adds n machines to sim: host-NNN.corp.contoso.com with ids
// 0…0NNN, tagged "wave-<NNN mod 3>". It returns refs that name each
// machine, mixed: ids, FQDNs and bare first labels.
func fleet(t testing.TB, sim *defender.Simulator, n int) []string {
	t.Helper()
	refs := make([]string, n)
	for i := range n {
		m := defender.Machine{ID: fmt.Sprintf("%040x", 0xa0000+i), ComputerDNSName: fmt.Sprintf("host-%03d.corp.contoso.com", i),
			OSPlatform: "Windows11", HealthStatus: "Active", OnboardingStatus: "Onboarded",
			MachineTags: []string{fmt.Sprintf("wave-%d", i%3)}}
		if err := sim.AddMachine(m); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			refs[i] = strings.ToUpper(m.ID)
		case 1:
			refs[i] = m.ComputerDNSName
		default:
			refs[i] = fmt.Sprintf("host-%03d", i)
		}
	}
	return refs
}

// TestResolveMachinesCounts: issue 11's targets, 12 machines in at most 3
// look-up calls and 500 in at most 25, each call admitted once against the
// machines budget; the simulator plans the same calls. Every ref resolves
// to its own machine.
func TestResolveMachinesCounts(t *testing.T) {
	for _, tt := range []struct{ n, maxCalls int }{{12, 3}, {500, 25}} {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			f := fakemde.New(t, nil)
			refs := fleet(t, f.Sim, tt.n)
			gate := &budgetGate{}
			res, err := fakeClient(t, f, gate).ResolveMachines(context.Background(), refs)
			if err != nil {
				t.Fatal(err)
			}
			calls := f.Count(fakemde.OpMachines)
			t.Logf("%d refs resolved in %d look-up calls", tt.n, calls)
			if calls > tt.maxCalls || gate.count(defender.BudgetMachines) != calls || len(gate.admits) != 1 {
				t.Fatalf("%d calls, admissions %v; want at most %d calls, one machines admission each", calls, gate.admits, tt.maxCalls)
			}
			for _, r := range f.Requests(fakemde.OpMachines) {
				if n := len(f.URL()) + len(r.Path) + 1 + len(r.Query); n > defender.MaxLookupURLBytes {
					t.Errorf("look-up URL of %d bytes", n)
				}
			}
			var ids []string
			for i, r := range res {
				m, ok := r.Machine()
				if want := fmt.Sprintf("%040x", 0xa0000+i); !ok || m.ID != want || r.Ref != refs[i] {
					t.Fatalf("ref %q resolved to %v (%v), want machine %s", refs[i], r.Machines, r.Match(), want)
				}
				ids = append(ids, m.ID)
			}
			// The pre-check of their actions, on the machineactions API.
			if _, err := fakeClient(t, f, gate).ActionsForMachines(context.Background(), ids, 5); err != nil {
				t.Fatal(err)
			}
			pre := f.Count(fakemde.OpActions)
			t.Logf("their actions pre-checked in %d look-up calls", pre)
			if pre > tt.maxCalls || gate.count(defender.BudgetMachineActions) != pre {
				t.Fatalf("pre-check: %d calls, %d admissions; want at most %d", pre, gate.count(defender.BudgetMachineActions), tt.maxCalls)
			}

			simGate := &budgetGate{}
			sim := defender.NewSimulator(nil)
			sim.Gate = simGate
			fleet(t, sim, tt.n)
			simRes, err := sim.ResolveMachines(context.Background(), refs)
			if err != nil || len(simRes) != tt.n || simGate.count(defender.BudgetMachines) != calls {
				t.Fatalf("simulator: %v, %d results, %d admissions; want %d results in %d calls", err, len(simRes), simGate.count(defender.BudgetMachines), tt.n, calls)
			}
		})
	}
}

// TestResolveMachinesOutcomes: one, none or several per ref, never a
// guess; the bare-name fallback only when no exact name matches; the same
// from the simulator.
func TestResolveMachinesOutcomes(t *testing.T) {
	f := fakemde.New(t, nil)
	add := func(id, name string) {
		t.Helper()
		if err := f.Sim.AddMachine(defender.Machine{ID: id, ComputerDNSName: name}); err != nil {
			t.Fatal(err)
		}
	}
	add(strings.Repeat("1", 40), "db-01")                    // exact bare name …
	add(strings.Repeat("2", 40), "db-01.contoso.local")      // … beats this prefix match
	add(strings.Repeat("3", 40), "o'brien-pc.contoso.local") // quote in the name
	add(strings.Repeat("4", 40), "app.eu.contoso.local")
	add(strings.Repeat("5", 40), "app.us.contoso.local") // "app" names two
	cases := []struct {
		ref   string
		match defender.Match
		id    string
	}{
		{"web-01", defender.MatchOne, defender.SimWeb01},
		{"WEB-01.contoso.local", defender.MatchOne, defender.SimWeb01},
		{defender.SimDB01, defender.MatchOne, defender.SimDB01},
		{"kiosk.contoso.local", defender.MatchSeveral, ""},
		{"kiosk", defender.MatchSeveral, ""},
		{"db-01", defender.MatchOne, strings.Repeat("1", 40)},
		{"o'brien-pc", defender.MatchOne, strings.Repeat("3", 40)},
		{"app", defender.MatchSeveral, ""},
		{"app.eu", defender.MatchNone, ""}, // has a dot: exact names only
		{"nosuch", defender.MatchNone, ""},
		{strings.Repeat("f", 40), defender.MatchNone, ""},
		{"x' or 1 eq 1 or '", defender.MatchNone, ""},
		{"bad\nname", defender.MatchNone, ""},
		{"web-01", defender.MatchOne, defender.SimWeb01}, // a repeat answers twice
	}
	var refs []string
	for _, c := range cases {
		refs = append(refs, c.ref)
	}
	check := func(name string, res []defender.Resolution) {
		t.Helper()
		for i, c := range cases {
			r := res[i]
			m, _ := r.Machine()
			if r.Ref != c.ref || r.Match() != c.match || m.ID != c.id {
				t.Errorf("%s: %q = %v %q (%d machines), want %v %q", name, c.ref, r.Match(), m.ID, len(r.Machines), c.match, c.id)
			}
		}
		if res[12].Invalid == "" || res[11].Invalid != "" {
			t.Errorf("%s: Invalid = %q / %q; want only the control character refused", name, res[12].Invalid, res[11].Invalid)
		}
	}
	res, err := fakeClient(t, f, nil).ResolveMachines(context.Background(), refs)
	if err != nil {
		t.Fatal(err)
	}
	check("client", res)
	if n := f.Count(fakemde.OpMachines); n != 1 {
		t.Errorf("%d look-ups, want 1", n)
	}
	sim := defender.NewSimulator(nil)
	for _, m := range f.Sim.Machines() {
		_ = sim.AddMachine(m)
	}
	simRes, err := sim.ResolveMachines(context.Background(), refs)
	if err != nil {
		t.Fatal(err)
	}
	check("simulator", simRes)
}

// TestResolveMachinesPaging: small pages are followed; beyond MaxListPages
// the refs of that look-up are Incomplete and never guessed (an id found
// stays one: ids are unique).
func TestResolveMachinesPaging(t *testing.T) {
	f := fakemde.New(t, nil)
	refs := fleet(t, f.Sim, 12)
	c := fakeClient(t, f, nil)
	f.SetPageSize(5)
	res, err := c.ResolveMachines(context.Background(), refs)
	if err != nil || f.Count(fakemde.OpMachines) != 3 {
		t.Fatalf("%v after %d calls; want 3 pages", err, f.Count(fakemde.OpMachines))
	}
	for _, r := range res {
		if r.Match() != defender.MatchOne || r.Incomplete {
			t.Fatalf("%q: %v incomplete=%v", r.Ref, r.Match(), r.Incomplete)
		}
	}
	f.SetPageSize(1)
	res, err = c.ResolveMachines(context.Background(), refs)
	if err != nil || f.Count(fakemde.OpMachines) != 3+defender.MaxListPages {
		t.Fatalf("%v after %d calls; want %d more", err, f.Count(fakemde.OpMachines), defender.MaxListPages)
	}
	for i, r := range res {
		want := defender.MatchSeveral
		if i < defender.MaxListPages && i%3 == 0 { // an id, and on a page read
			want = defender.MatchOne
		}
		if !r.Incomplete || r.Match() != want {
			t.Errorf("%q: %v incomplete=%v, want %v", r.Ref, r.Match(), r.Incomplete, want)
		}
	}
}

// TestMachinesByTag: the tag is one quoted literal, pages are followed up
// to MaxListPages, beyond that ErrTruncated.
func TestMachinesByTag(t *testing.T) {
	f := fakemde.New(t, nil)
	fleet(t, f.Sim, 31) // wave-0: 11 machines, wave-1: 10
	gate := &budgetGate{}
	c := fakeClient(t, f, gate)
	ctx := context.Background()
	f.SetPageSize(4)
	ms, err := c.MachinesByTag(ctx, "WAVE-1")
	if err != nil || len(ms) != 10 || f.Count(fakemde.OpMachines) != 3 || gate.count(defender.BudgetMachines) != 3 {
		t.Fatalf("%d machines, %v, %d calls, admissions %v; want 10 in 3 pages", len(ms), err, f.Count(fakemde.OpMachines), gate.admits)
	}
	if err := f.Sim.AddMachine(defender.Machine{ID: strings.Repeat("c", 40), MachineTags: []string{"it's') or (true"}}); err != nil {
		t.Fatal(err)
	}
	if ms, err := c.MachinesByTag(ctx, "it's') or (true"); err != nil || len(ms) != 1 {
		t.Fatalf("hostile tag: %v, %v", ms, err)
	}
	if ms, err := c.MachinesByTag(ctx, "crown-jewel"); err != nil || len(ms) != 1 || ms[0].ID != defender.SimDB01 {
		t.Fatalf("crown-jewel: %v, %v", ms, err)
	}
	if ms, err := c.MachinesByTag(ctx, "nobody"); err != nil || ms == nil || len(ms) != 0 {
		t.Fatalf("unknown tag: %v, %v; want an empty slice", ms, err)
	}
	f.SetPageSize(1)
	before := f.Count(fakemde.OpMachines)
	if _, err := c.MachinesByTag(ctx, "wave-0"); !errors.Is(err, defender.ErrTruncated) || f.Count(fakemde.OpMachines)-before != defender.MaxListPages {
		t.Fatalf("10 pages: %v after %d calls; want ErrTruncated after %d", err, f.Count(fakemde.OpMachines)-before, defender.MaxListPages)
	}
	before = f.Count(fakemde.OpMachines)
	if _, err := c.MachinesByTag(ctx, " "); !errors.Is(err, defender.ErrBadRequest) || f.Count(fakemde.OpMachines) != before {
		t.Fatalf("blank tag: %v; want ErrBadRequest and no call", err)
	}
}
