package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/protect"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/store"
)

// protectedBy configures PROTECTED_MACHINES = spec (and the mode).
func protectedBy(t *testing.T, spec string, mode protect.Mode) func(*env) {
	set, err := protect.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return func(e *env) { e.cfg.Protected, e.cfg.ProtectedMode = set, mode }
}

// pendingFor is machine's pending request.
func (e *env) pendingFor(machineID string) store.Request {
	e.t.Helper()
	r, err := e.store.ForMachine(context.Background(), machineID)
	if err != nil || r.State != store.Pending {
		e.t.Fatalf("no pending request for %s: %+v, %v (ephemeral: %+v)", machineID, r, err, e.rec.ephemerals)
	}
	return r
}

// approvedEvents are id's approval audit events' reasons, in order.
func (e *env) approvedEvents(id string) []string {
	var out []string
	for _, ev := range e.events(id) {
		if ev.Type == store.EventApproved {
			out = append(out, ev.Actor+" "+strings.SplitN(ev.Reason, ",", 2)[0])
		}
	}
	return out
}

// TestProtectedNeedsTwoApprovers: a machine protected by id, by host-name
// pattern or by MDE tag needs two different approvers. After the first the
// card stays pending with its Approve button, the thread says one more is
// needed and nothing reaches MDE; the same approver again counts once; the
// second different approver sends exactly one isolation.
func TestProtectedNeedsTwoApprovers(t *testing.T) {
	tests := []struct {
		name, spec, host, machine, why string
	}{
		{"by id", strings.ToUpper(defender.SimWeb01), "web-01.contoso.local", defender.SimWeb01, "matches " + defender.SimWeb01},
		{"by pattern", "WEB-0?", "web-01.contoso.local", defender.SimWeb01, "matches web-0? (short name)"},
		{"by tag", "dc*.contoso.local, tag:Crown-Jewel", "db-01.contoso.local", defender.SimDB01, "matches tag:Crown-Jewel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, protectedBy(t, tt.spec, protect.TwoApprovers))
			e.command(analyst, "/isolate", tt.host+" full crown jewel beaconing")
			r := e.pendingFor(tt.machine)
			if r.Required() != 2 || r.Protected != tt.why || e.rec.cards[0].Protected != tt.why {
				t.Fatalf("request needs %d, protected %q, card %q; want 2 and %q", r.Required(), r.Protected, e.rec.cards[0].Protected, tt.why)
			}

			e.click(e.svc, r.ID, boss, true)
			first := e.get(r.ID)
			updates := e.rec.cardUpdates()
			if first.State != store.Pending || !slices.Equal(first.ApprovedBy, []string{boss}) || e.posts.Load() != 0 {
				t.Fatalf("after the first approval: %s by %v, %d POSTs; want pending by [boss], none", first.State, first.ApprovedBy, e.posts.Load())
			}
			if len(updates) != 1 || !slices.Contains(updates[0].Buttons, ButtonApprove) || len(updates[0].Request.ApprovedBy) != 1 {
				t.Fatalf("card after the first approval: %+v; want it updated, Approve kept, one approval shown", updates)
			}
			if !e.rec.hasReply("(1 of 2)") || !e.rec.hasReply("one more approval is needed") {
				t.Errorf("thread %q does not say one more approval is needed", e.rec.replyTexts())
			}

			e.click(e.svc, r.ID, boss, true) // the same approver again
			if again := e.get(r.ID); again.State != store.Pending || again.Version != first.Version {
				t.Fatalf("the same approver twice changed the request: %s v%d", again.State, again.Version)
			}
			if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || ev.Actor != boss {
				t.Errorf("repeated approval not audited as refused: %+v", ev)
			}

			e.click(e.svc, r.ID, boss2, true)
			done := e.finish(r.ID)
			if done.State != store.Done || done.DecidedBy != boss2 || e.posts.Load() != 1 || len(simActions(t, e.sim, tt.machine)) != 1 {
				t.Fatalf("after the second approver: %s by %s, %d POSTs; want done by boss2, one POST", done.State, done.DecidedBy, e.posts.Load())
			}
			if got, want := e.approvedEvents(r.ID), []string{boss + " 1 of 2", boss2 + " 2 of 2"}; !slices.Equal(got, want) {
				t.Errorf("approval events %q, want %q", got, want)
			}
		})
	}
}

// TestProtectedRequesterNotOneOfTwo: an approver who requested cannot be
// one of the two: their click is refused and does not count.
func TestProtectedRequesterNotOneOfTwo(t *testing.T) {
	e := newEnv(t, protectedBy(t, "web-01.contoso.local", protect.TwoApprovers), func(e *env) {
		e.cfg.AllowedUsers = append(e.cfg.AllowedUsers, boss)
	})
	e.command(boss, "/isolate", "web-01.contoso.local full beaconing")
	r := e.pendingFor(defender.SimWeb01)
	e.click(e.svc, r.ID, boss2, true)
	e.click(e.svc, r.ID, boss, true)
	got := e.get(r.ID)
	if got.State != store.Pending || !slices.Equal(got.ApprovedBy, []string{boss2}) || e.posts.Load() != 0 {
		t.Fatalf("requester's approval counted: %s by %v, %d POSTs", got.State, got.ApprovedBy, e.posts.Load())
	}
	if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || ev.Actor != boss || !strings.Contains(ev.Reason, "own request") {
		t.Errorf("requester's click not refused as own request: %+v", ev)
	}
	// The store refuses it as well, whatever the caller checked.
	if _, _, err := e.store.Approve(context.Background(), r.ID, store.Change{To: store.Approved, By: boss}); err == nil {
		t.Error("the store let the requester approve")
	}
}

// TestProtectedDenyEndsIt: a deny by any approver ends a protected request,
// also after a first approval, and nothing reaches MDE.
func TestProtectedDenyEndsIt(t *testing.T) {
	for _, denier := range []string{boss, boss2} {
		t.Run(denier, func(t *testing.T) {
			e := newEnv(t, protectedBy(t, "tag:crown-jewel", protect.TwoApprovers))
			e.command(analyst, "/isolate", "db-01.contoso.local full beaconing")
			r := e.pendingFor(defender.SimDB01)
			e.click(e.svc, r.ID, boss, true)
			e.click(e.svc, r.ID, denier, false)
			e.click(e.svc, r.ID, boss2, true) // too late
			e.svc.Wait()
			if got := e.get(r.ID); got.State != store.Denied || got.DecidedBy != denier || e.posts.Load() != 0 {
				t.Fatalf("%s by %s, %d POSTs; want denied by %s, none", got.State, got.DecidedBy, e.posts.Load(), denier)
			}
		})
	}
}

// TestProtectedRefuseMode: with PROTECTED_MODE=refuse a protected machine's
// isolation is refused privately before any card; other machines are not
// affected.
func TestProtectedRefuseMode(t *testing.T) {
	e := newEnv(t, protectedBy(t, "tag:crown-jewel", protect.Refuse))
	e.command(analyst, "/isolate", "db-01.contoso.local full beaconing")
	if r, err := e.store.ForMachine(context.Background(), defender.SimDB01); err == nil {
		t.Fatalf("a request was created: %+v", r)
	}
	if e.rec.cardCount() != 0 {
		t.Fatal("a card was posted for a refused protected machine")
	}
	if ev, ok := e.lastRefusal(); !ok || ev.MachineID != defender.SimDB01 || !strings.HasPrefix(ev.Reason, "protected machine: matches tag:crown-jewel") {
		t.Errorf("refusal event %+v", ev)
	}
	if m := text(e.rec.lastEphemeral(t, analyst)); !strings.Contains(m, "protected") {
		t.Errorf("the requester was told %q", m)
	}
	r := e.request() // web-01 is not protected: one approver, as always
	e.click(e.svc, r.ID, boss, true)
	if got := e.finish(r.ID); got.State != store.Done || got.Required() != 1 {
		t.Fatalf("unprotected machine: %s, needs %d", got.State, got.Required())
	}
}

// TestProtectedReleaseUnrestricted: releasing a protected machine needs one
// approver, in either mode.
func TestProtectedReleaseUnrestricted(t *testing.T) {
	for _, mode := range []protect.Mode{protect.TwoApprovers, protect.Refuse} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t, protectedBy(t, "tag:crown-jewel", mode))
			if _, err := e.sim.Isolate(context.Background(), nil, defender.SimDB01, defender.Full, "earlier, in the portal"); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(time.Minute) // the portal's isolation succeeded
			e.command(analyst, "/unisolate", "db-01.contoso.local forensics done")
			r := e.pendingFor(defender.SimDB01)
			if r.Required() != 1 || r.Protected != "" {
				t.Fatalf("release needs %d approvers, protected %q", r.Required(), r.Protected)
			}
			e.click(e.svc, r.ID, boss, true)
			if got := e.finish(r.ID); got.State != store.Done || e.posts.Load() != 1 {
				t.Fatalf("release: %s, %d POSTs; want done, one", got.State, e.posts.Load())
			}
		})
	}
}

// TestProtectedConcurrentApproversRedis: on real Redis, two approvers
// click Approve twice each at once, over two replicas, on eight protected
// machines: each machine gets exactly one MDE call, and each request
// exactly one first and one completing approval.
func TestProtectedConcurrentApproversRedis(t *testing.T) {
	srv := redistest.Start(t)
	const machines = 8
	e := newEnv(t, protectedBy(t, "tag:Tier0", protect.TwoApprovers), func(e *env) {
		cfg := storeConfig(e.clk.Now)
		cfg.Prefix = "protected-race"
		e.store = store.NewApprovals(srv.Client(), cfg)
	})
	other := e.newService()
	var ids []string
	for i := range machines {
		m := defender.Machine{ID: fmt.Sprintf("%040x", 0x7a0+i), ComputerDNSName: fmt.Sprintf("t0-%02d.contoso.local", i),
			OSPlatform: "Windows11", HealthStatus: "Active", OnboardingStatus: "Onboarded", MachineTags: []string{"tier0"}}
		if err := e.sim.AddMachine(m); err != nil {
			t.Fatal(err)
		}
		e.command(analyst, "/isolate", m.ComputerDNSName+" full ransomware")
		r := e.pendingFor(m.ID)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for j, svc := range []*Service{e.svc, other, other, e.svc} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				e.click(svc, r.ID, []string{boss, boss2}[j%2], true)
			}()
		}
		close(start)
		wg.Wait()
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		waitFor(t, id+" sent", func() bool { return e.get(id).MachineActionID != "" })
	}
	e.clk.Advance(time.Minute)
	e.svc.Wait()
	other.Wait()
	if n := e.posts.Load(); n != machines {
		t.Fatalf("%d MDE isolate calls for %d machines, want exactly one each", n, machines)
	}
	for i, id := range ids {
		r := e.get(id)
		if acts := simActions(t, e.sim, r.MachineID); len(acts) != 1 {
			t.Errorf("machine %d: MDE holds %d actions", i, len(acts))
		}
		var reasons []string
		for _, a := range e.approvedEvents(id) {
			reasons = append(reasons, a[strings.Index(a, " ")+1:])
		}
		// Each approval is audited after its compare-and-set, so the two
		// racing events may land in either order; the counts tell them apart.
		slices.Sort(reasons)
		if !slices.Equal(reasons, []string{"1 of 2", "2 of 2"}) || len(r.ApprovedBy) != 2 || r.ApprovedBy[0] == r.ApprovedBy[1] {
			t.Errorf("%s: approvals %q by %v; want one first and one completing approval by two approvers", id, reasons, r.ApprovedBy)
		}
	}
}
