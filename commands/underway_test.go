package commands

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// TestActionUnderWay: someone started an action in the portal between the
// request and its approval. One of the request's own type is followed to
// its end (found by the re-read before the call, or after MDE's 400 when
// that read failed), never failed; one of the opposite type fails the
// request naming it. No POST is made either way.
func TestActionUnderWay(t *testing.T) {
	tests := []struct {
		name      string
		portal    func(sim *defender.Simulator) (defender.MachineAction, error)
		readFails bool // the re-read before the call fails: MDE's 400 tells
		want      store.State
		wantEvent string
		approveIn time.Duration // from the request to its approval
		wantPosts int32
	}{
		{name: "isolation under way is followed",
			portal: func(sim *defender.Simulator) (defender.MachineAction, error) {
				return sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Selective, "from the portal")
			},
			approveIn: 2 * recheckAfter, want: store.Done, wantEvent: store.EventFollowing},
		{name: "isolation under way, approved at once: MDE's 400 tells",
			portal: func(sim *defender.Simulator) (defender.MachineAction, error) {
				return sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "from the portal")
			},
			want: store.Done, wantEvent: store.EventFollowing, wantPosts: 1},
		{name: "isolation under way, found after MDE's 400",
			portal: func(sim *defender.Simulator) (defender.MachineAction, error) {
				return sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "from the portal")
			},
			approveIn: 2 * recheckAfter, readFails: true, want: store.Done, wantEvent: store.EventFollowing, wantPosts: 1},
		{name: "release under way is refused",
			portal: func(sim *defender.Simulator) (defender.MachineAction, error) {
				return sim.Unisolate(context.Background(), nil, defender.SimWeb01, "from the portal")
			},
			approveIn: 2 * recheckAfter, want: store.Failed, wantEvent: store.EventFailed},
		{name: "release under way, approved at once: MDE's 400 tells",
			portal: func(sim *defender.Simulator) (defender.MachineAction, error) {
				return sim.Unisolate(context.Background(), nil, defender.SimWeb01, "from the portal")
			},
			want: store.Failed, wantEvent: store.EventFailed, wantPosts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The device is offline: the portal's action stays Pending.
			e := newEnv(t, func(e *env) { e.sim.PendingFor, e.sim.CompleteAfter = time.Hour, 2*time.Hour })
			r := e.request()
			portal, err := tt.portal(e.sim)
			if err != nil {
				t.Fatal(err)
			}
			if tt.readFails {
				var reads atomic.Int32
				e.def.MachineActionsFn = func(ctx context.Context, id string) ([]defender.MachineAction, error) {
					if reads.Add(1) == 1 {
						return nil, &defender.APIError{Op: "list actions", Kind: defender.ErrUnavailable}
					}
					return e.sim.MachineActions(ctx, id)
				}
			}
			e.clk.Advance(tt.approveIn)
			e.click(e.svc, r.ID, boss, true)
			waitFor(t, r.ID+" sent or ended", func() bool { r := e.get(r.ID); return r.MachineActionID != "" || r.State.Terminal() })
			e.clk.Advance(3 * time.Hour) // the action ends
			got := e.finish(r.ID)
			followed := tt.want == store.Done
			if got.State != tt.want || (got.MachineActionID == portal.ID) != followed {
				t.Fatalf("request %+v; want %s, following the portal's action %s: %v", got, tt.want, portal.ID, followed)
			}
			if ev, ok := e.event(r.ID, tt.wantEvent); !ok || ev.ActionID != portal.ID {
				t.Fatalf("%s event %+v (found %v); want the portal's action (history %v)", tt.wantEvent, ev, ok, e.history(r.ID))
			}
			if n := e.posts.Load(); n != tt.wantPosts {
				t.Errorf("%d POSTs, want %d", n, tt.wantPosts)
			}
			if acts := simActions(t, e.sim, defender.SimWeb01); len(acts) != 1 {
				t.Errorf("MDE holds %d actions, want only the portal's", len(acts))
			}
			if e.rec.replyActions(portal.ID) == 0 {
				t.Errorf("thread %q does not show the portal's action", e.rec.replyTexts())
			}
		})
	}
}

// TestUnderWayEndedMeanwhile: MDE refused the call as "in progress" but
// lists nothing under way when asked (the action ended in between): the
// request is sent once more and completes; a second refusal fails it.
func TestUnderWayEndedMeanwhile(t *testing.T) {
	for _, refusals := range []int32{1, 2} {
		e := newEnv(t)
		r := e.request()
		e.setOnPost(func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			if int32(n) <= refusals {
				return defender.MachineAction{}, &defender.APIError{Op: "isolate", Status: 400, Code: "ActiveRequestAlreadyExists", Kind: defender.ErrAlreadyInProgress}
			}
			return real()
		})
		e.click(e.svc, r.ID, boss, true)
		got := e.finish(r.ID)
		want := store.Done
		if refusals == 2 {
			want = store.Failed
		}
		if got.State != want {
			t.Errorf("%d refusals: request %+v, want %s", refusals, got, want)
		}
		if n := e.posts.Load(); n != min(refusals+1, 2) {
			t.Errorf("%d refusals: %d POSTs", refusals, n)
		}
	}
}

// TestUnderWayStartedWhileQueued: an action started in the portal while
// the request waited for its rate-limit slot is followed once MDE refuses
// the call as "already in progress".
func TestUnderWayStartedWhileQueued(t *testing.T) {
	e := newEnv(t, func(e *env) {
		e.gate = newGate(oneAMinute(e.clk.Now, time.Second), e.cfg.QueueMaxWait, e.clk.Now)
	})
	e.command(analyst, "/isolate", "web-01.contoso.local full first")
	e.command(analyst, "/isolate", "web-02.contoso.local full second")
	e.click(e.svc, "r-1", boss, true)
	waitFor(t, "r-1 sent", func() bool { return e.get("r-1").MachineActionID != "" })
	e.click(e.svc, "r-2", boss, true)
	waitFor(t, "r-2 queued", func() bool { _, ok := e.event("r-2", store.EventQueued); return ok })
	portal, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb02, defender.Full, "from the portal")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "r-2 follows", func() bool { return e.get("r-2").MachineActionID != "" })
	if got := e.get("r-2"); got.MachineActionID != portal.ID {
		t.Fatalf("r-2 follows %q, want the portal's %s", got.MachineActionID, portal.ID)
	}
	if acts := simActions(t, e.sim, defender.SimWeb02); len(acts) != 1 {
		t.Fatalf("MDE holds %d actions for web-02, want only the portal's", len(acts))
	}
	if ev, ok := e.event("r-2", store.EventFollowing); !ok || ev.ActionID != portal.ID {
		t.Fatalf("following event %+v (found %v)", ev, ok)
	}
	e.clk.Advance(time.Minute)
	e.svc.Wait()
}
