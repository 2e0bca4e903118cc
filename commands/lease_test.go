package commands

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// TestLeaseProtocol walks one request through the owner's writes and pins
// the lease each one records (CheckAt), and that each is refused to a
// replica holding an older version of the request.
func TestLeaseProtocol(t *testing.T) {
	e := newEnv(t)
	l := e.svc.leases
	ctx := context.Background()
	r := e.request()
	now := e.clk.Now()
	if got, want := l.callLease(), 2*e.cfg.CallTimeout; got != want {
		t.Fatalf("callLease %v, want %v", got, want)
	}
	r, err := e.store.Transition(ctx, r.ID, store.Pending, l.approval(boss))
	if err != nil || r.State != store.Approved || !r.CheckAt.Equal(now.Add(l.callLease())) {
		t.Fatalf("approval: %+v, %v", r, err)
	}
	at := now.Add(time.Minute)
	steps := []struct {
		name    string
		write   func(r store.Request) (store.Request, error)
		checkAt time.Time
	}{
		{"claim", func(r store.Request) (store.Request, error) { return l.claim(ctx, r) }, now.Add(l.callLease())},
		{"renew", func(r store.Request) (store.Request, error) { return l.renew(ctx, r, l.callLease()) }, now.Add(l.callLease())},
		{"hold until a slot", func(r store.Request) (store.Request, error) { return l.holdUntil(ctx, r, at) }, at.Add(l.callLease())},
		{"take over", func(r store.Request) (store.Request, error) { return l.takeOver(ctx, r) }, now.Add(l.callLease())},
		{"follow", func(r store.Request) (store.Request, error) {
			return l.following(ctx, r, defender.MachineAction{ID: "act-1", Status: defender.StatusPending}, true)
		}, now.Add(e.cfg.FollowFor + l.pollerLease())},
		{"follow, not enrolled", func(r store.Request) (store.Request, error) {
			return l.following(ctx, r, defender.MachineAction{ID: "act-1", Status: defender.StatusPending}, false)
		}, now.Add(l.retrySoon())},
		{"enrol", func(r store.Request) (store.Request, error) { return l.enrol(ctx, r) }, now.Add(e.cfg.FollowFor + l.pollerLease())},
		{"report a status", func(r store.Request) (store.Request, error) {
			return l.reported(ctx, r, defender.MachineAction{ID: "act-1", Status: defender.StatusInProgress})
		}, now.Add(e.cfg.FollowFor + l.pollerLease())},
		{"hand back", func(r store.Request) (store.Request, error) {
			if err := l.handBack(ctx, r, "why"); err != nil {
				return r, err
			}
			return e.store.Get(ctx, r.ID)
		}, now.Add(l.retrySoon())},
	}
	for _, st := range steps {
		stale := r
		nr, err := st.write(r)
		if err != nil || !nr.CheckAt.Equal(st.checkAt) || nr.Version <= r.Version {
			t.Fatalf("%s: %+v, %v; want CheckAt %v", st.name, nr, err, st.checkAt)
		}
		r = nr
		if st.name == "claim" {
			continue // from approved: the stale copy's state already differs
		}
		if _, err := st.write(stale); err == nil {
			t.Fatalf("%s with a stale version was accepted", st.name)
		} else if _, ok := lost(err); !ok {
			t.Fatalf("%s with a stale version: %v, want a conflict", st.name, err)
		}
	}
	if r.MachineActionID != "act-1" || r.Note != "why" {
		t.Fatalf("request %+v", r)
	}
}

// TestStaleOwnerCannotEnd: a replica whose lease ran out while another
// took the request over must not end it or hand it back: its fail, finish
// or retry is refused by the version check, and it tells neither the
// thread nor the audit log.
func TestStaleOwnerCannotEnd(t *testing.T) {
	tests := []struct {
		name string
		end  func(s *Service, r store.Request)
	}{
		{"fail", func(s *Service, r store.Request) { s.fail(context.Background(), r, "stale owner gives up", nil, nil) }},
		{"finish", func(s *Service, r store.Request) {
			s.finish(context.Background(), r, defender.MachineAction{ID: "act-1", Status: defender.StatusSucceeded})
		}},
		{"retry later", func(s *Service, r store.Request) { s.retryLater(context.Background(), r, "stale owner's retry") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			r := e.request()
			r, err := e.store.Transition(ctx, r.ID, store.Pending, e.svc.leases.approval(boss))
			if err != nil {
				t.Fatal(err)
			}
			stale, err := e.svc.leases.claim(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(e.svc.leases.callLease() + time.Second)
			other := e.newService()
			if _, err := other.leases.takeOver(ctx, stale); err != nil {
				t.Fatal(err)
			}
			replies := len(e.rec.replyTexts())

			tt.end(e.svc, stale)

			if got := e.get(r.ID); got.State != store.Executing || got.Version != stale.Version+1 {
				t.Fatalf("request %s v%d after the stale owner's %s; want executing, owned by the taker-over (v%d)", got.State, got.Version, tt.name, stale.Version+1)
			}
			h := e.history(r.ID)
			if slices.Contains(h, store.EventFailed) || slices.Contains(h, store.EventDone) {
				t.Fatalf("audit %v records the stale owner's end", h)
			}
			if n := len(e.rec.replyTexts()); n != replies {
				t.Fatalf("thread %q: the stale owner spoke", e.rec.replyTexts()[replies:])
			}
		})
	}
}
