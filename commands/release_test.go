package commands

import (
	"context"
	"slices"
	"testing"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// TestReleaseFromCard: Release on a succeeded isolation's card opens a
// release request by the clicker, on a new card in the same channel,
// linked from the isolation's thread, and approved like any other (the
// clicker cannot approve it; an approver can).
func TestReleaseFromCard(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	if got := e.finish(r.ID); got.State != store.Done {
		t.Fatalf("isolation %+v", got)
	}
	e.press(r.ID, analyst2, ButtonRelease)
	rel, err := e.store.ForMachine(context.Background(), defender.SimWeb01)
	if err != nil || rel.ID == r.ID || rel.Command != store.Unisolate || rel.State != store.Pending || rel.Requester != analyst2 || rel.Channel != r.Channel || rel.MessageTS == "" {
		t.Fatalf("release request %+v, %v", rel, err)
	}
	if n := e.rec.cardCount(); n != 2 {
		t.Fatalf("%d cards, want the release's own", n)
	}
	if ev, ok := e.event(r.ID, store.EventReleaseRequested); !ok || ev.Actor != analyst2 || ev.Reason != rel.ID+" via Slack" {
		t.Fatalf("release_requested %+v (found %v)", ev, ok)
	}
	if !linksTo(e.rec, r.MessageTS, rel) {
		t.Fatalf("the isolation's thread does not link the release card")
	}
	e.click(e.svc, rel.ID, analyst2, true) // two-person rule: refused
	if got := e.get(rel.ID); got.State != store.Pending {
		t.Fatalf("the clicker approved their own release: %s", got.State)
	}
	e.click(e.svc, rel.ID, boss, true)
	if got := e.finish(rel.ID); got.State != store.Done {
		t.Fatalf("release %+v", got)
	}
	if acts := simActions(t, e.sim, defender.SimWeb01); len(acts) != 2 || acts[0].Type != "Unisolate" {
		t.Fatalf("MDE actions %+v", acts)
	}
}

// linksTo reports whether a reply in thread ts links rel's card.
func linksTo(rec *recorder, ts string, rel store.Request) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.replies {
		if s.Thread == ts && slices.ContainsFunc(s.M.Spans, func(sp Span) bool {
			return sp.Kind == Thread && sp.TS == rel.MessageTS && sp.Channel == rel.Channel
		}) {
			return true
		}
	}
	return false
}

// TestReleaseRefused: Release opens nothing for a request that is not a
// succeeded isolation, or for someone not allowed to request.
func TestReleaseRefused(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		setup  func(e *env) store.Request
		reason string // the refusal's audit reason
		click  bool   // refused as a click (on the request's stream), else as a command
	}{
		{"pending isolation", analyst, func(e *env) store.Request { return e.request() }, "release: no succeeded isolation", true},
		{"stranger", stranger, func(e *env) store.Request {
			r := e.request()
			e.click(e.svc, r.ID, boss, true)
			return e.finish(r.ID)
		}, "user not allowed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := tt.setup(e)
			cards := e.rec.cardCount()
			e.press(r.ID, tt.user, ButtonRelease)
			if tt.click {
				if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || ev.Reason != tt.reason {
					t.Fatalf("click refusal %+v (found %v)", ev, ok)
				}
			} else if ev, ok := e.lastRefusal(); !ok || ev.Reason != tt.reason || ev.Actor != tt.user {
				t.Fatalf("refusal %+v (found %v)", ev, ok)
			}
			if e.rec.cardCount() != cards {
				t.Fatal("a card was posted")
			}
		})
	}
}
