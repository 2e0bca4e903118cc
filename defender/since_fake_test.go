package defender_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/testclock"
)

// TestActionsSince: against the fake MDE, one filtered look-up reads the
// actions of one type created since T (rounded down to the second) and
// none older or of another type, following @odata.nextLink with one
// admitted call per page; too many pages is ErrTruncated. The simulator
// answers the same.
func TestActionsSince(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clk := testclock.New(t0)
	f := fakemde.New(t, clk.Now)
	fleet(t, f.Sim, 20)
	gate := &budgetGate{}
	c := fakeClient(t, f, gate)
	ids := machineIDs(20)
	isolateAll(t, c, ids[:5]) // before T
	clk.Advance(10200 * time.Millisecond)
	gap := isolateAll(t, c, ids[5:6]) // 10.2 s: before T, in T's second
	since := t0.Add(10700 * time.Millisecond)
	var want []string
	for _, id := range ids[6:18] {
		clk.Advance(time.Second)
		want = append(want, isolateAll(t, c, []string{id})...)
	}
	clk.Advance(10 * time.Second) // the first isolations are done
	if _, err := c.Unisolate(context.Background(), nil, ids[0], "release [isolate-bot r-2]"); err != nil {
		t.Fatal(err)
	}
	want = append(gap, want...)
	slices.Reverse(want) // newest first

	ctx := context.Background()
	f.SetPageSize(5)
	calls, admits := f.Count(fakemde.OpActions), gate.count(defender.BudgetMachineActions)
	acts, err := c.ActionsSince(ctx, "Isolate", since)
	if err != nil {
		t.Fatal(err)
	}
	if got := actionIDs(acts); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (newest first)", got, want)
	}
	if n, a := f.Count(fakemde.OpActions)-calls, gate.count(defender.BudgetMachineActions)-admits; n != 3 || a != 3 {
		t.Fatalf("%d calls, %d admissions; want 3 pages of 5, each one admitted call", n, a)
	}
	for _, r := range f.Requests(fakemde.OpActions)[calls:] {
		if !strings.Contains(r.Query, "creationDateTimeUtc") {
			t.Errorf("page request %q lost the filter", r.Query)
		}
	}
	if un, err := c.ActionsSince(ctx, "Unisolate", since); err != nil || len(un) != 1 || un[0].MachineID != ids[0] {
		t.Fatalf("Unisolate since T: %+v, %v; want the one release", un, err)
	}
	sim, err := f.Sim.ActionsSince(ctx, "isolate", since) // MDE's type names compare case-insensitively
	if got := actionIDs(sim); err != nil || !slices.Equal(got, want) {
		t.Fatalf("simulator: %v, %v; want %v", got, err, want)
	}

	f.SetPageSize(1) // 13 pages: more than MaxListPages
	calls = f.Count(fakemde.OpActions)
	if _, err := c.ActionsSince(ctx, "Isolate", since); !errors.Is(err, defender.ErrTruncated) || f.Count(fakemde.OpActions)-calls != defender.MaxListPages {
		t.Fatalf("%v after %d calls; want ErrTruncated after %d", err, f.Count(fakemde.OpActions)-calls, defender.MaxListPages)
	}
	if acts, err := c.ActionsSince(ctx, "Isolate", clk.Now().Add(time.Second)); err != nil || len(acts) != 0 {
		t.Fatalf("nothing since: %v, %v; want an empty list", acts, err)
	}
}

func actionIDs(acts []defender.MachineAction) []string {
	out := make([]string, len(acts))
	for i, a := range acts {
		out[i] = a.ID
	}
	return out
}
