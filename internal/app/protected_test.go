package app

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/store"
)

// TestProtectedMachineTwoApprovers, end to end (real slack-go against the
// fake Slack, the fake MDE, Redis): db-01 carries the MDE tag crown-jewel,
// which PROTECTED_MACHINES protects. Its card says protected; Bob's
// approval keeps the card's Approve button, the thread says one more is
// needed and MDE is not called; Bob again and Carol then click at once:
// exactly one isolation reaches MDE, approved by Carol after Bob.
func TestProtectedMachineTwoApprovers(t *testing.T) {
	// db-01 carries the MDE tag Crown-Jewel: protected by its id, by a
	// host-name pattern and by the tag, each end to end.
	for _, tc := range []struct{ name, spec, why string }{
		{"by id", defender.SimDB01, "matches " + defender.SimDB01},
		{"by pattern", "dc*.contoso.local, db-0?.contoso.local", "matches db-0?.contoso.local"},
		{"by tag", "dc*.contoso.local, tag:Crown-Jewel", "matches tag:Crown-Jewel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			runApp(t, w, map[string]string{"APPROVER_USER_IDS": "U0BOB,U0CAROL", "PROTECTED_MACHINES": tc.spec})
			ctx := context.Background()
			w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "db-01.contoso.local full ransomware on the database server")
			card := waitCard(t, w)
			if txt := card.AllText(); !strings.Contains(txt, "Protected machine") || !strings.Contains(txt, tc.why) {
				t.Fatalf("the card does not say protected:\n%s", txt)
			}

			w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
			if _, err := w.fs.WaitThread("C1", card.TS, func(ms []fakeslack.Message) bool { return anyText(ms, "(1 of 2)") }, wait); err != nil {
				t.Fatalf("the thread never said one more approval is needed: %v", err)
			}
			if now, ok := w.fs.Message("C1", card.TS); !ok || !strings.Contains(now.AllText(), "Approvals: 1 of 2") {
				t.Fatalf("the card does not show the first approval: %+v", now)
			} else if _, ok := now.Button(bot.ActionApprove); !ok {
				t.Fatal("the card lost its Approve button after the first of two approvals")
			}
			if n := w.mde.Count(fakemde.OpIsolate); n != 0 {
				t.Fatalf("MDE called %d times after one approval of two", n)
			}

			w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
			w.fs.ClickButton("U0CAROL", "C1", card.TS, bot.ActionApprove)
			if _, err := w.fs.WaitEphemeral("U0BOB", func(es []fakeslack.Ephemeral) bool { return len(es) > 0 }, wait); err != nil {
				t.Fatalf("Bob's second click was not answered: %v", err)
			}
			approvals := store.NewApprovals(w.rs.Client(), store.ApprovalsConfig{Prefix: strings.ToLower(t.Name()),
				Retention: config.DefaultAuditRetention, AuditMaxLen: config.DefaultAuditMaxLen})
			var r store.Request
			deadline := time.Now().Add(wait)
			for r.MachineActionID == "" {
				if time.Now().After(deadline) {
					t.Fatalf("no MDE action recorded: %+v", r)
				}
				time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
				r, _ = approvals.ForMachine(ctx, defender.SimDB01)
			}
			if n := w.mde.Count(fakemde.OpIsolate); n != 1 {
				t.Fatalf("%d isolate calls to MDE, want exactly 1", n)
			}
			if r.DecidedBy != "U0CAROL" || strings.Join(r.ApprovedBy, ",") != "U0BOB,U0CAROL" || r.Protected != tc.why {
				t.Errorf("request %+v: want approved by Bob then Carol, protection recorded", r)
			}
			evs, err := approvals.History(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, ev := range evs {
				if ev.Type == store.EventApproved {
					reasons = append(reasons, ev.Actor+" "+strings.SplitN(ev.Reason, ",", 2)[0])
				}
			}
			// Each approval is audited after its compare-and-set, so the
			// two events may land in either order; their counts say which
			// came first.
			slices.Sort(reasons)
			if strings.Join(reasons, "; ") != "U0BOB 1 of 2; U0CAROL 2 of 2" {
				t.Errorf("approval audit events %q", reasons)
			}
		})
	}
}

func anyText(ms []fakeslack.Message, sub string) bool {
	for _, m := range ms {
		if strings.Contains(m.AllText(), sub) {
			return true
		}
	}
	return false
}
