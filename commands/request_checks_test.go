package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// TestTypeRefusalNamesWhatWorks: a type the machine cannot take is refused
// with the command that would work, and the simulator (MDE) refuses it
// the same way.
func TestTypeRefusalNamesWhatWorks(t *testing.T) {
	tests := []struct {
		text, machine string
		typ           defender.IsolationType
		works         string
	}{
		{"web-02.contoso.local selective x", defender.SimWeb02, defender.Selective, "/isolate web-02.contoso.local full"},
		{"printer-3f.contoso.local selective x", defender.SimPrinter3F, defender.Selective, "/isolate printer-3f.contoso.local unmanaged"},
		{"web-01.contoso.local unmanaged x", defender.SimWeb01, defender.UnManagedDevice, "/isolate web-01.contoso.local full"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			e := newEnv(t)
			e.command(analyst, "/isolate", tt.text)
			m := e.rec.lastEphemeral(t, analyst)
			if !hasCode(m, tt.works) {
				t.Errorf("refusal %q does not show %q", text(m), tt.works)
			}
			if _, err := e.store.ForMachine(context.Background(), tt.machine); err == nil || e.rec.cardCount() != 0 {
				t.Errorf("a request or card exists for a refused type (%v, %d cards)", err, e.rec.cardCount())
			}
			if _, err := e.sim.Isolate(context.Background(), nil, tt.machine, tt.typ, "portal"); !strings.Contains(errString(err), "not possible") {
				t.Errorf("simulator accepted %s on %s: %v", tt.typ, tt.machine, err)
			}
		})
	}
}

func hasCode(m Message, prefix string) bool {
	for _, s := range m.Spans {
		if s.Kind == Code && strings.HasPrefix(s.Text, prefix) {
			return true
		}
	}
	return false
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestUnisolateWithIncompleteHistory: MDE's history can be incomplete, so
// a release is refused only when MDE's newest action is a succeeded
// release; with no isolation on record it is requested with a warning in
// its thread.
func TestUnisolateWithIncompleteHistory(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(e *env)
		warning bool
	}{
		{"no action on record", func(*env) {}, true},
		{"only a failed isolation", func(e *env) {
			e.sim.PendingFor, e.sim.CompleteAfter = time.Hour, 2*time.Hour
			a, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "portal")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.sim.CancelMachineAction(context.Background(), nil, a.ID, "portal"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"isolated", func(e *env) {
			if _, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "portal"); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(time.Minute)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(e)
			e.command(analyst, "/unisolate", defender.SimWeb01+" cleanup")
			r, err := e.store.ForMachine(context.Background(), defender.SimWeb01)
			if err != nil || r.State != store.Pending || r.Command != store.Unisolate {
				t.Fatalf("no pending release: %+v, %v (ephemerals %+v)", r, err, e.rec.ephemerals)
			}
			if got := e.rec.hasReply("Warning: "); got != tt.warning {
				t.Errorf("warning in the thread = %v, want %v (%q)", got, tt.warning, e.rec.replyTexts())
			}
		})
	}
}
