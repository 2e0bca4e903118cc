package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// press clicks button b on request id's card.
func (e *env) press(id, user string, b Button) {
	e.t.Helper()
	r := e.get(id)
	if err := e.svc.Click(context.Background(), Click{RequestID: id, User: user, Channel: r.Channel, MessageTS: r.MessageTS, Action: b}); err != nil {
		e.t.Logf("Click returned (for logs): %v", err)
	}
}

// offlineSent is an approved isolation of web-01 whose MDE action stays
// Pending (the device is offline), with the request following it.
func offlineSent(t *testing.T) (*env, store.Request) {
	e := newEnv(t, func(e *env) { e.sim.PendingFor, e.sim.CompleteAfter = time.Hour, 2*time.Hour })
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the MDE action recorded", func() bool { return e.get(r.ID).MachineActionID != "" })
	return e, e.get(r.ID)
}

// TestCancelPendingAction: the requester or an approver cancels the MDE
// action of an executing request from the card or with /isolate cancel;
// MDE gets the cancel with a comment naming who and the request's marker,
// and the request ends failed, audited as cancelled. Anyone else is
// refused privately, audited, and MDE is not called.
func TestCancelPendingAction(t *testing.T) {
	tests := []struct {
		name    string
		user    string
		command bool
		ok      bool
	}{
		{"requester from the card", analyst, false, true},
		{"approver from the card", boss2, false, true},
		{"approver by command", boss, true, true},
		{"requester by command", analyst, true, true},
		{"stranger from the card", stranger, false, false},
		{"allowed analyst, not requester nor approver, by command", analyst2, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, r := offlineSent(t)
			if tt.command {
				e.command(tt.user, "/isolate", "cancel "+r.ID)
			} else {
				e.press(r.ID, tt.user, ButtonCancel)
			}
			a, err := e.sim.MachineAction(context.Background(), r.MachineActionID)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.ok {
				if a.Status != defender.StatusPending {
					t.Fatalf("MDE action is %s after a refused cancel", a.Status)
				}
				if tt.command {
					if ev, ok := e.lastRefusal(); !ok || ev.Actor != tt.user || ev.Reason != "not requester or approver" {
						t.Fatalf("refusal %+v (found %v)", ev, ok)
					}
				} else if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || ev.Actor != tt.user || !strings.HasPrefix(ev.Reason, "cancel: ") {
					t.Fatalf("click refusal %+v (found %v)", ev, ok)
				}
				if got := e.get(r.ID); got.State != store.Executing {
					t.Fatalf("request %s after a refused cancel", got.State)
				}
				return
			}
			if a.Status != defender.StatusCancelled || !strings.HasPrefix(a.CancellationComment, Marker(r.ID)+" ") || !strings.Contains(a.CancellationComment, tt.user) {
				t.Fatalf("MDE action %s, comment %q", a.Status, a.CancellationComment)
			}
			waitFor(t, r.ID+" ended", func() bool { return e.get(r.ID).State.Terminal() })
			e.svc.Wait()
			if got := e.get(r.ID); got.State != store.Failed || got.MachineActionID != a.ID {
				t.Fatalf("request %+v, want failed", got)
			}
			if ev, ok := e.event(r.ID, store.EventCancelled); !ok || ev.Actor != tt.user || ev.ActionID != a.ID {
				t.Fatalf("cancelled event %+v (found %v); history %v", ev, ok, e.history(r.ID))
			}
			if ups := e.rec.cardUpdates(); len(ups) == 0 || ups[len(ups)-1].Request.State != store.Failed {
				t.Fatalf("card not updated to the end: %+v", ups)
			} else if c := ups[len(ups)-1]; c.Action == nil || c.Action.Status != defender.StatusCancelled || len(c.Buttons) != 0 {
				t.Fatalf("last card %+v, want the cancelled action and no buttons", c)
			}
		})
	}
}

// TestCancelFinalAction: an action that has ended cannot be cancelled:
// the clicker is told privately, MDE gets no cancel.
func TestCancelFinalAction(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	r = e.finish(r.ID)
	cancels := 0
	e.def.CancelMachineActionFn = func(ctx context.Context, slot defender.Slot, id, c string) (defender.MachineAction, error) {
		cancels++
		return e.sim.CancelMachineAction(ctx, slot, id, c)
	}
	e.press(r.ID, analyst, ButtonCancel)
	if ev, ok := e.event(r.ID, store.EventClickRefused); !ok || ev.Reason != "cancel: not executing" {
		t.Fatalf("click refusal %+v (found %v)", ev, ok)
	}
	if cancels != 0 {
		t.Fatalf("%d cancel calls", cancels)
	}
}
