package bot_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/store"
)

// TestE2EFollowToOutcome: after approval, the card itself shows the MDE
// action's status as it moves (Pending → InProgress → the end), the thread
// gets exactly one reply per change, and the final card shows the outcome
// in plain words with only the buttons valid then: Release after a
// succeeded isolation, none after a failed one (whose card and reply carry
// MDE's error fields).
func TestE2EFollowToOutcome(t *testing.T) {
	tests := []struct {
		name    string
		outcome func(defender.MachineAction) defender.MachineAction
		state   store.State
		final   string // in the final card and the last reply
		buttons []string
	}{
		{"succeeded", nil, store.Done, "isolated (Full) at", []string{bot.ActionRelease}},
		{"failed", func(a defender.MachineAction) defender.MachineAction {
			a.Status = defender.StatusFailed
			a.Error = json.RawMessage(`"Device is offline"`)
			a.ErrorHResult = json.RawMessage(`-2147024891`)
			return a
		}, store.Failed, "Isolation failed: error: Device is offline; errorHResult: 0x80070005", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			// Slow enough for the card to show each status (polled every 20 ms).
			w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = 600*time.Millisecond, 1200*time.Millisecond
			w.mde.Sim.Outcome = tt.outcome
			w.start(e2eOptions{})
			w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full follow me")
			card, id := w.card(t, "host-42.corp.example")
			w.fs.Click("U0BOB", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)

			var seen []string // the statuses the card showed, in order
			var last fakeslack.Message
			waitUntil(t, id+" card reaches its outcome", func() bool {
				m, _ := w.fs.Message("C1", card.TS)
				last = m
				for _, st := range []string{"is *Pending*", "is *InProgress*", tt.final} {
					if strings.Contains(m.AllText(), st) && (len(seen) == 0 || seen[len(seen)-1] != st) {
						seen = append(seen, st)
					}
				}
				return strings.Contains(m.AllText(), tt.final)
			})
			if want := []string{"is *Pending*", "is *InProgress*", tt.final}; !slices.Equal(seen, want) {
				t.Errorf("the card showed %q, want %q", seen, want)
			}
			var got []string
			for _, b := range last.Buttons() {
				got = append(got, b.ActionID)
			}
			if !slices.Equal(got, tt.buttons) {
				t.Errorf("final card offers %v, want %v:\n%s", got, tt.buttons, last.AllText())
			}
			w.state(t, id, tt.state)
			w.thread(t, card.TS, tt.final) // the reply follows the card's update

			replies := w.fs.Thread("C1", card.TS)
			count := func(sub string) int {
				n := 0
				for _, m := range replies {
					if strings.Contains(m.AllText(), sub) {
						n++
					}
				}
				return n
			}
			if n := count("is now *InProgress*"); n != 1 {
				t.Errorf("%d replies announce InProgress, want 1", n)
			}
			if n := count(tt.final); n != 1 {
				t.Errorf("%d replies give the outcome %q, want 1", n, tt.final)
			}
			if n := count("Sent to MDE"); n != 1 {
				t.Errorf("%d replies announce the Pending action, want 1", n)
			}
		})
	}
}
