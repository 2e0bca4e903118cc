package commands

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

func TestClickRefusals(t *testing.T) {
	tests := []struct {
		name, user, reason string
	}{
		{"requester cannot approve own request", analyst, "approve: own request"},
		{"non-approver", analyst2, "approve: not an approver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.request()
			e.click(e.svc, r.ID, tt.user, true)
			if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || ev.Reason != tt.reason || ev.Actor != tt.user {
				t.Fatalf("click refused event %+v (found %v); want %q", ev, ok, tt.reason)
			}
			if got := e.get(r.ID); got.State != store.Pending {
				t.Fatalf("state %s", got.State)
			}
			if len(e.rec.lastEphemeral(t, tt.user).Spans) == 0 {
				t.Fatal("the clicker was not told")
			}
			if e.posts.Load() != 0 {
				t.Fatal("MDE was called")
			}
		})
	}
}

func TestDenyCallsNothing(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, false)
	e.svc.Wait()
	got := e.get(r.ID)
	if got.State != store.Denied || got.DecidedBy != boss {
		t.Fatalf("request %+v", got)
	}
	if e.posts.Load() != 0 || len(simActions(t, e.sim, defender.SimWeb01)) != 0 {
		t.Fatal("MDE called after a denial")
	}
	if ev, ok := e.event(r.ID, store.EventDenied); !ok || ev.Actor != boss {
		t.Fatalf("denied event %+v (found %v)", ev, ok)
	}
	if u := e.rec.cardUpdates(); len(u) != 1 || u[0].Request.State != store.Denied {
		t.Fatalf("card updates %+v", u)
	}
	e.click(e.svc, r.ID, boss2, true)
	if got := e.get(r.ID); got.State != store.Denied || got.DecidedBy != boss {
		t.Fatalf("a late approval changed the denial: %+v", got)
	}
	if m := e.rec.lastEphemeral(t, boss2); !slices.Contains(m.Spans, who(boss)) {
		t.Fatalf("late click told %q, not who denied", text(m))
	}
}

// TestDoubleApprove: two approvers click at once; one decision, one POST,
// the other is told who was first.
func TestDoubleApprove(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	var wg sync.WaitGroup
	for _, u := range []string{boss, boss2} {
		wg.Add(1)
		go func() { defer wg.Done(); e.click(e.svc, r.ID, u, true) }()
	}
	wg.Wait()
	got := e.finish(r.ID)
	if got.State != store.Done || e.posts.Load() != 1 {
		t.Fatalf("state %s, %d POSTs", got.State, e.posts.Load())
	}
	loser := boss
	if got.DecidedBy == boss {
		loser = boss2
	}
	if m := e.rec.lastEphemeral(t, loser); !slices.Contains(m.Spans, who(got.DecidedBy)) {
		t.Fatalf("loser told %q, not who approved", text(m))
	}
	if n := strings.Count(strings.Join(e.history(r.ID), ","), store.EventApproved); n != 1 {
		t.Fatalf("%d approved events", n)
	}
}

func TestClickStoreDown(t *testing.T) {
	var fail bool
	e := newEnv(t, func(e *env) {
		fa := failingStore(e)
		fa.GetFn = func(ctx context.Context, id string) (store.Request, error) {
			if fail {
				return store.Request{}, store.ErrUnavailable
			}
			return e.mem.Get(ctx, id)
		}
	})
	r := e.request()
	fail = true
	e.click(e.svc, r.ID, boss, true)
	if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || !strings.HasPrefix(ev.Reason, "approve: state store: ") {
		t.Fatalf("click refused event %+v (found %v)", ev, ok)
	}
	fail = false
	if e.get(r.ID).State != store.Pending || e.posts.Load() != 0 {
		t.Fatal("decided or MDE called while the store was down")
	}
}

// An approver on another replica can click the card before the requester's
// replica has recorded the card's ts. The thread must survive: every reply
// lands under the card, and the request is neither withdrawn nor orphaned.
func TestClickBeforeCardRecorded(t *testing.T) {
	e := newEnv(t)
	other := e.newService()
	post := e.msgr.PostCardFn
	e.msgr.PostCardFn = func(ctx context.Context, ch string, c Card) (string, error) {
		ts, err := post(ctx, ch, c)
		// The card is in Slack, PostCard has not returned: what a fast
		// approver on another replica can do.
		if err := other.Click(context.Background(), Click{RequestID: c.Request.ID, User: boss, Channel: channel, MessageTS: ts, Action: ButtonApprove}); err != nil {
			t.Errorf("click: %v", err)
		}
		return ts, err
	}
	e.command(analyst, "/isolate", "web-01.contoso.local full suspicious beaconing")
	r, err := e.store.ForMachine(context.Background(), defender.SimWeb01)
	if err != nil {
		t.Fatal(err)
	}
	r = e.finish(r.ID)
	if r.State != store.Done || r.MessageTS != "1764406800.000001" {
		t.Fatalf("request ended %s with card ts %q; want done under the card", r.State, r.MessageTS)
	}
	e.rec.mu.Lock()
	replies := append([]sent(nil), e.rec.replies...)
	e.rec.mu.Unlock()
	for _, rep := range replies {
		if rep.Thread != r.MessageTS {
			t.Errorf("reply %q went to thread %q, not the card %q", text(rep.M), rep.Thread, r.MessageTS)
		}
	}
	if len(replies) < 3 {
		t.Errorf("only %d thread replies: %q", len(replies), e.rec.replyTexts())
	}
}
