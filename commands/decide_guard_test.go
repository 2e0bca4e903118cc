package commands

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/store"
)

const (
	mgrGroup = "S0MGR" // approvers' user group
	boss3    = "UBOSS3"
)

// withApproverGroup makes mgrGroup the approvers' group; members says who
// Slack lists in it right now (changed by the test).
func withApproverGroup(members *[]string, fail *error) func(*env) {
	return func(e *env) {
		e.cfg.Approvers = []string{mgrGroup}
		e.dir.GroupMembersFn = func(_ context.Context, g string) ([]string, error) {
			e.dirCalls.Add(1)
			if *fail != nil {
				return nil, *fail
			}
			if g == mgrGroup {
				return *members, nil
			}
			return map[string][]string{socGroup: {analyst2}}[g], nil
		}
	}
}

// TestDecisionRereadsMembership: every decision (approve, deny, cancel)
// asks Slack for the approvers' group again, so an approver removed from
// the group within the cache's lifetime cannot decide, and a Slack failure
// refuses (fail closed); the cache still answers refusals.
func TestDecisionRereadsMembership(t *testing.T) {
	decide := map[string]func(e *env, id string){
		"approve": func(e *env, id string) { e.click(e.svc, id, boss3, true) },
		"deny":    func(e *env, id string) { e.click(e.svc, id, boss3, false) },
		"cancel":  func(e *env, id string) { e.command(boss3, "/isolate", "cancel "+id) },
	}
	tests := []struct {
		name, how string
		removed   bool  // boss3 removed from the group after the cache was filled
		slackErr  error // Slack fails after the cache was filled
		reason    string
	}{
		{"approve after removal", "approve", true, nil, "approve: not an approver"},
		{"deny after removal", "deny", true, nil, "deny: not an approver"},
		{"cancel after removal", "cancel", true, nil, "not requester or approver"},
		{"approve while Slack fails", "approve", false, errors.New("slack: ratelimited"), "approve: membership check failed"},
		{"cancel while Slack fails", "cancel", false, errors.New("slack: ratelimited"), "membership check failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members, fail := []string{boss3}, error(nil)
			e := newEnv(t, withApproverGroup(&members, &fail))
			r := e.request()
			// boss3 is an approver now: the cache says so for 5 minutes.
			if ok, err := e.svc.isMember(context.Background(), boss3, e.cfg.Approvers); !ok || err != nil {
				t.Fatalf("boss3 not an approver before: %v", err)
			}
			if tt.removed {
				members = nil
			}
			fail = tt.slackErr
			decide[tt.how](e, r.ID)
			if got := e.get(r.ID); got.State != store.Pending {
				t.Fatalf("request %s by a cached approver: %+v", got.State, got)
			}
			ev, ok := e.event(r.ID, store.EventClickRefused)
			if tt.how == "cancel" {
				ev, ok = e.lastRefusal()
			}
			if !ok || !strings.HasPrefix(ev.Reason, tt.reason) || ev.Actor != boss3 {
				t.Fatalf("refusal %+v (found %v); want %q", ev, ok, tt.reason)
			}
		})
	}
}

// TestDecisionRefusalsUseCache: a non-approver's repeated clicks are
// refused from the cache (one Slack read), and an approver in the group
// still decides after a fresh read.
func TestDecisionRefusalsUseCache(t *testing.T) {
	members, fail := []string{boss3}, error(nil)
	e := newEnv(t, withApproverGroup(&members, &fail))
	r := e.request()
	before := e.dirCalls.Load()
	for range 5 {
		e.click(e.svc, r.ID, stranger, true)
	}
	if n := e.dirCalls.Load() - before; n != 1 {
		t.Fatalf("Slack read %d times for 5 refused clicks; want 1 (cached)", n)
	}
	e.click(e.svc, r.ID, boss3, true)
	if got := e.finish(r.ID); got.State != store.Done || got.DecidedBy != boss3 {
		t.Fatalf("request %+v", got)
	}
}

// TestClickMustComeFromTheCard: a click whose channel or ts is not the
// card's, as recorded on the request, is refused privately and audited.
func TestClickMustComeFromTheCard(t *testing.T) {
	tests := []struct{ name, channel, ts string }{
		{"another message", channel, "1764406899.000001"},
		{"another channel", "COTHER", ""}, // ts filled with the card's below
		{"no ts", channel, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.request()
			ts := tt.ts
			switch ts {
			case "":
				ts = r.MessageTS
			case "-":
				ts = ""
			}
			if err := e.svc.Click(context.Background(), Click{RequestID: r.ID, User: boss, Channel: tt.channel, MessageTS: ts, Action: ButtonApprove}); err != nil {
				t.Fatal(err)
			}
			if got := e.get(r.ID); got.State != store.Pending {
				t.Fatalf("state %s after a click from elsewhere", got.State)
			}
			if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || ev.Reason != "approve: not the request's card" || ev.Actor != boss {
				t.Fatalf("click refused event %+v (found %v)", ev, ok)
			}
			if m := e.rec.lastEphemeral(t, boss); len(m.Spans) == 0 {
				t.Fatal("the clicker was not told")
			}
			e.click(e.svc, r.ID, boss, true) // from the card itself
			if got := e.finish(r.ID); got.State != store.Done {
				t.Fatalf("a click from the card ended %s", got.State)
			}
		})
	}
}

// TestDecisionsNameTheTransport: decisions are marked with the transport
// they were made through, in the audit trail and in the MDE comment.
func TestDecisionsNameTheTransport(t *testing.T) {
	for _, via := range []string{"", "console"} {
		want := "via " + via
		if via == "" {
			want = "via Slack"
		}
		t.Run(want, func(t *testing.T) {
			e := newEnv(t, func(e *env) { e.via = via })
			r := e.request()
			e.click(e.svc, r.ID, boss, true)
			e.finish(r.ID)
			if ev, ok := e.event(r.ID, store.EventApproved); !ok || ev.Reason != want {
				t.Fatalf("approved event %+v; want reason %q", ev, want)
			}
			e.mu.Lock()
			comments := e.comments
			e.mu.Unlock()
			if len(comments) != 1 || !strings.Contains(comments[0], "by "+analyst+" "+want+",") {
				t.Fatalf("MDE comments %q; want %q", comments, want)
			}
			r2 := e.requestOn("web-02.contoso.local")
			e.click(e.svc, r2.ID, boss, false)
			if ev, ok := e.event(r2.ID, store.EventDenied); !ok || ev.Reason != want {
				t.Fatalf("denied event %+v; want reason %q", ev, want)
			}
		})
	}
}

// requestOn requests isolation of host (a simulator machine) and returns
// the pending request.
func (e *env) requestOn(host string) store.Request {
	e.t.Helper()
	e.command(analyst, "/isolate", host+" full suspicious")
	for _, m := range e.sim.Machines() {
		if m.ComputerDNSName != host {
			continue
		}
		r, err := e.store.ForMachine(context.Background(), m.ID)
		if err != nil || r.State != store.Pending {
			e.t.Fatalf("no pending request for %s: %+v, %v", host, r, err)
		}
		return r
	}
	e.t.Fatalf("no machine %s in the simulator", host)
	return store.Request{}
}
