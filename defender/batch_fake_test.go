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
		NotFoundRetryDelay: 10 * time.Millisecond,
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
			for i, r := range res {
				m, ok := r.Machine()
				if want := fmt.Sprintf("%040x", 0xa0000+i); !ok || m.ID != want || r.Ref != refs[i] {
					t.Fatalf("ref %q resolved to %v (%v), want machine %s", refs[i], r.Machines, r.Match(), want)
				}
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

// isolateAll isolates every machine of ids on the fake, returning the
// action ids in order.
func isolateAll(t *testing.T, c *defender.Client, ids []string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		a, err := c.Isolate(context.Background(), nil, id, defender.Full, "outbreak [isolate-bot r-1]")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a.ID)
	}
	return out
}

func machineIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%040x", 0xa0000+i)
	}
	return ids
}

// TestMachineActionsByID: many actions read in URL-bounded id look-ups,
// each admitted against the machineactions budget; unknown ids are simply
// absent; a bad id sends nothing.
func TestMachineActionsByID(t *testing.T) {
	f := fakemde.New(t, nil)
	fleet(t, f.Sim, 60)
	gate := &budgetGate{}
	c := fakeClient(t, f, gate)
	actIDs := isolateAll(t, c, machineIDs(60))
	ask := append([]string{"00000000-0000-4000-8000-00000000dead"}, actIDs...)
	ask = append(ask, strings.ToUpper(actIDs[0])) // a repeat is asked once
	acts, err := c.MachineActionsByID(context.Background(), ask)
	if err != nil {
		t.Fatal(err)
	}
	calls := f.Count(fakemde.OpActions)
	if len(acts) != 60 || calls < 2 || calls > 3 || gate.count(defender.BudgetMachineActions) != calls {
		t.Fatalf("%d actions in %d calls (%d admissions); want 60 in 2-3 URL-bounded calls", len(acts), calls, gate.count(defender.BudgetMachineActions))
	}
	seen := map[string]bool{}
	for _, a := range acts {
		seen[a.ID] = true
	}
	for _, id := range actIDs {
		if !seen[id] {
			t.Fatalf("action %s missing", id)
		}
	}
	if _, err := c.MachineActionsByID(context.Background(), []string{actIDs[0], "not-a-guid"}); !errors.Is(err, defender.ErrBadRequest) || f.Count(fakemde.OpActions) != calls {
		t.Fatalf("bad id: %v; want ErrBadRequest and no call", err)
	}
	sim := f.Sim
	simActs, err := sim.MachineActionsByID(context.Background(), ask)
	if err != nil || len(simActs) != 60 {
		t.Fatalf("simulator: %d actions, %v", len(simActs), err)
	}
}

// TestActionsForMachines: the pre-check reads Isolate and Unisolate actions
// of many machines in bounded look-ups with $top; an answer that fills its
// $top is ErrTruncated after one call, never retried.
func TestActionsForMachines(t *testing.T) {
	f := fakemde.New(t, nil)
	fleet(t, f.Sim, 40)
	c := fakeClient(t, f, nil)
	ids := machineIDs(40)
	isolateAll(t, c, ids[:30])
	ctx := context.Background()
	acts, err := c.ActionsForMachines(ctx, ids, 2)
	if err != nil || len(acts) != 30 {
		t.Fatalf("%d actions, %v; want 30", len(acts), err)
	}
	reqs := f.Requests(fakemde.OpActions)
	for _, r := range reqs {
		if !strings.Contains(r.Query, "%20and%20(type%20eq%20'Isolate'%20or%20type%20eq%20'Unisolate')") || !strings.Contains(r.Query, "&$top=") {
			t.Errorf("query %s lacks the type restriction or $top", r.Query)
		}
	}
	simActs, err := f.Sim.ActionsForMachines(ctx, ids, 2)
	if err != nil || len(simActs) != 30 {
		t.Fatalf("simulator: %d actions, %v", len(simActs), err)
	}

	// A second isolation per machine: with top 1 the answer fills $top.
	f.Sim.PendingFor, f.Sim.CompleteAfter = 0, 0 // first actions done, a second may start
	isolateAll(t, c, ids[:1])
	before := f.Count(fakemde.OpActions)
	if _, err := c.ActionsForMachines(ctx, ids[:1], 1); !errors.Is(err, defender.ErrTruncated) || f.Count(fakemde.OpActions)-before != 1 {
		t.Fatalf("%v after %d calls; want ErrTruncated after one", err, f.Count(fakemde.OpActions)-before)
	}
	if _, err := f.Sim.ActionsForMachines(ctx, ids[:1], 1); !errors.Is(err, defender.ErrTruncated) {
		t.Fatalf("simulator: %v; want ErrTruncated", err)
	}
	// The single-machine list is the same bounded read.
	one, err := c.MachineActions(ctx, ids[0])
	if err != nil || len(one) != 2 || one[0].CreationDateTimeUTC.Before(one[1].CreationDateTimeUTC) {
		t.Fatalf("MachineActions: %v, %v", one, err)
	}
	last := f.Requests(fakemde.OpActions)
	if q := last[len(last)-1].Query; !strings.HasSuffix(q, fmt.Sprintf("&$top=%d", defender.MaxActionsPerMachine)) {
		t.Errorf("MachineActions query %s; want $top=%d", q, defender.MaxActionsPerMachine)
	}
}

// TestNotFoundReadAgain: MDE's spurious 404 on an existing machine is
// read once more; a second 404 is ErrNotFound.
func TestNotFoundReadAgain(t *testing.T) {
	f := fakemde.New(t, nil)
	c := fakeClient(t, f, nil)
	ctx := context.Background()
	f.FailNext(fakemde.OpMachine, fakemde.Fault{Status: 404, Code: "ResourceNotFound", Message: "Machine x was not found"})
	if m, err := c.Machine(ctx, defender.SimWeb01); err != nil || m.ID != defender.SimWeb01 || f.Count(fakemde.OpMachine) != 2 {
		t.Fatalf("%+v, %v after %d calls; want web-01 after 2", m, err, f.Count(fakemde.OpMachine))
	}
	if _, err := c.Machine(ctx, strings.Repeat("0", 40)); !errors.Is(err, defender.ErrNotFound) || f.Count(fakemde.OpMachine) != 4 {
		t.Fatalf("%v after %d calls; want ErrNotFound after 2 more", err, f.Count(fakemde.OpMachine))
	}
	// A name look-up's 404 is its "no match": a typo is not read again.
	f.FailNext(fakemde.OpMachines, fakemde.Fault{Status: 404, Code: "ResourceNotFound"})
	if ms, err := c.FindMachinesByName(ctx, "nosuch.contoso.local"); err != nil || len(ms) != 0 || f.Count(fakemde.OpMachines) != 1 {
		t.Fatalf("%v, %v after %d calls", ms, err, f.Count(fakemde.OpMachines))
	}
}
