package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/store"
)

func TestExpiryByTick(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.clk.Advance(59 * time.Minute)
	if err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.get(r.ID).State != store.Pending {
		t.Fatal("expired early")
	}
	e.clk.Advance(time.Minute)
	if err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.get(r.ID)
	if got.State != store.Expired || got.DecidedBy != systemActor {
		t.Fatalf("request %+v", got)
	}
	if ev, ok := e.event(r.ID, store.EventExpired); !ok || ev.Actor != systemActor {
		t.Fatalf("expired event %+v (found %v)", ev, ok)
	}
	if u := e.rec.cardUpdates(); len(u) != 1 || u[0].Request.State != store.Expired {
		t.Fatalf("card updates %+v", u)
	}
	e.click(e.svc, r.ID, boss, true)
	if got := e.get(r.ID); got.State != store.Expired || e.posts.Load() != 0 {
		t.Fatalf("a late click revived %+v, or MDE was called", got)
	}
}

// A click after APPROVAL_TTL, before any tick, expires the request in the
// store; the expiry must still reach the card, the thread and the audit log
// exactly once (the scheduler no longer sees the request).
func TestExpiryByLateClick(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.clk.Advance(61 * time.Minute)
	e.click(e.svc, r.ID, boss, true)
	if err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.get(r.ID); got.State != store.Expired {
		t.Fatalf("request is %s, want expired", got.State)
	}
	if n := strings.Count(strings.Join(e.history(r.ID), ","), store.EventExpired); n != 1 {
		t.Fatalf("%d expired events in %v, want 1", n, e.history(r.ID))
	}
	if u := e.rec.cardUpdates(); len(u) != 1 || u[0].Request.State != store.Expired {
		t.Fatalf("card updates %+v", u)
	}
	if e.posts.Load() != 0 {
		t.Fatal("MDE called")
	}
}
