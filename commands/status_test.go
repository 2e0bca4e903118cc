package commands

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

func TestHelpAndStatus(t *testing.T) {
	e := newEnv(t)
	e.command(stranger, "/isolate", "")
	if m := text(e.rec.lastEphemeral(t, stranger)); !strings.Contains(m, UsageIsolate) || !strings.Contains(m, UsageCancel) {
		t.Fatalf("help %q", m)
	}
	e.command(stranger, "/isolate", "status web-01.contoso.local")
	if ev, ok := e.lastRefusal(); !ok || ev.Reason != "user not allowed" || ev.Actor != stranger {
		t.Fatalf("status for a stranger: refused event %+v (found %v)", ev, ok)
	}
	e.command(boss, "/isolate", "status web-01.contoso.local")
	if m := e.rec.lastEphemeral(t, boss); !slices.Contains(m.Spans, bold(StateNotIsolated)) || m.Action != nil {
		t.Fatalf("status %q, action %+v", text(m), m.Action)
	}
	r := e.request()
	e.command(boss, "/isolate", "status r-1")
	m := e.rec.lastEphemeral(t, boss)
	i := slices.IndexFunc(m.Spans, func(s Span) bool { return s.Kind == Thread })
	if !slices.Contains(m.Spans, code(r.ID)) || i < 0 || m.Spans[i].TS != r.MessageTS {
		t.Fatalf("status %q does not link r-1's thread", text(m))
	}
}

func TestCancelCommand(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.command(analyst2, "/isolate", "cancel "+r.ID)
	if ev, ok := e.lastRefusal(); !ok || ev.Reason != "not requester or approver" {
		t.Fatalf("refused event %+v (found %v)", ev, ok)
	}
	if e.get(r.ID).State != store.Pending {
		t.Fatal("cancelled by someone who may not")
	}
	e.command(analyst, "/isolate", "cancel R-1")
	got := e.get(r.ID)
	if got.State != store.Cancelled || got.DecidedBy != analyst {
		t.Fatalf("request %+v", got)
	}
	if ev, ok := e.event(r.ID, store.EventCancelled); !ok || ev.Actor != analyst {
		t.Fatalf("cancelled event %+v (found %v)", ev, ok)
	}
	if u := e.rec.cardUpdates(); len(u) != 1 || u[0].Request.State != store.Cancelled {
		t.Fatalf("card updates %+v", u)
	}
	e.command(analyst, "/isolate", "cancel r-1")
	if ev, ok := e.lastRefusal(); !ok || ev.Reason != "not pending" {
		t.Fatalf("second cancel: refused event %+v (found %v)", ev, ok)
	}
}

func TestDeriveState(t *testing.T) {
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	act := func(typ, status string, ago time.Duration) defender.MachineAction {
		return defender.MachineAction{ID: typ + status, Type: typ, Status: status, CreationDateTimeUTC: now.Add(-ago)}
	}
	tests := []struct {
		name string
		acts []defender.MachineAction
		want string
	}{
		{"none", nil, StateNotIsolated},
		{"isolated", []defender.MachineAction{act("Isolate", "Succeeded", time.Hour)}, StateIsolated},
		{"pending isolate", []defender.MachineAction{act("Isolate", "Succeeded", 2*time.Hour), act("Isolate", "Pending", time.Minute)}, StateIsolationPend},
		{"pending release", []defender.MachineAction{act("Unisolate", "InProgress", time.Minute), act("Isolate", "Succeeded", time.Hour)}, StateReleasePending},
		{"released", []defender.MachineAction{act("Isolate", "Succeeded", 2*time.Hour), act("Unisolate", "Succeeded", time.Hour)}, StateNotIsolated},
		{"failed release keeps isolation", []defender.MachineAction{act("Unisolate", "Failed", time.Minute), act("Isolate", "Succeeded", time.Hour)}, StateIsolated},
		// MDE never lifts an isolation by itself: a year-old one still holds.
		{"old isolation still holds", []defender.MachineAction{act("Isolate", "Succeeded", 365*24*time.Hour)}, StateIsolated},
		{"other actions ignored", []defender.MachineAction{act("RunAntiVirusScan", "Pending", 0)}, StateNotIsolated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deriveState(tt.acts, now).State; got != tt.want {
				t.Fatalf("state %q, want %q", got, tt.want)
			}
		})
	}
}
