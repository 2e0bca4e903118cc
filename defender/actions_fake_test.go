package defender_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
)

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
