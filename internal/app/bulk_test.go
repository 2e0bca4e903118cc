package app

import (
	"context"
	"encoding/json"
	"fmt"
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

// Outbreak mode end to end (issue 11): real slack-go against the fake
// Slack, the real MDE client against the fake MDE, Redis.

// addMachines adds n machines outbreak-NN.contoso.local carrying tag.
func addMachines(t testing.TB, w *world, n int, tag string) []string {
	t.Helper()
	seen := time.Now().Add(-time.Hour)
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("outbreak-%02d.contoso.local", i)
		m := defender.Machine{ID: fmt.Sprintf("%040x", 0xb0000+i), ComputerDNSName: name, OSPlatform: "Windows11",
			HealthStatus: "Active", OnboardingStatus: "Onboarded", LastSeen: &seen}
		if tag != "" {
			m.MachineTags = []string{tag}
		}
		if err := w.mde.Sim.AddMachine(m); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// fastActions makes MDE end actions within a second and the bot read them
// every 100 ms after a batch's last call (progress every 200 ms), so a batch's summary (which
// waits for every sent action to end) comes within a second or two.
func fastActions(w *world) {
	w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = 200*time.Millisecond, 500*time.Millisecond
	w.fixed = func(f *config.Fixed) {
		f.PollInterval, f.BulkProgressEvery = 100*time.Millisecond, 200*time.Millisecond
	}
}

// runApp runs an app on w with env until the test ends.
func runApp(t testing.TB, w *world, env map[string]string) {
	t.Helper()
	_, _, cancel, done := w.running(t, env)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func waitThreadText(t testing.TB, w *world, ts, sub string) []fakeslack.Message {
	t.Helper()
	ms, err := w.fs.WaitThread("C1", ts, func(ms []fakeslack.Message) bool { return anyText(ms, sub) }, 3*wait)
	if err != nil {
		t.Fatalf("the thread never said %q: %v\n%v", sub, err, threadTexts(w, ts))
	}
	return ms
}

func threadTexts(w *world, ts string) []string {
	var out []string
	for _, m := range w.fs.Thread("C1", ts) {
		out = append(out, m.AllText())
	}
	return out
}

// isolatedOnce checks that every id got exactly one isolate call.
func isolatedOnce(t *testing.T, w *world) map[string]int {
	t.Helper()
	per := map[string]int{}
	for _, r := range w.mde.Requests(fakemde.OpIsolate) {
		parts := strings.Split(r.Path, "/")
		per[parts[len(parts)-2]]++
	}
	for id, n := range per {
		if n != 1 {
			t.Errorf("machine %s got %d isolate calls", id, n)
		}
	}
	return per
}

// TestOutbreakTwelveMachines: a list of 12 machines is resolved with at
// most 3 look-ups per API, posts one card with the count and the first
// machines, lists them all in the thread, needs two approvers (12 > 10),
// then isolates each machine exactly once, follows the 12 actions to their
// end with a few batched reads (one fails at MDE), audits each outcome
// once and posts one summary.
func TestOutbreakTwelveMachines(t *testing.T) {
	w := newWorld(t)
	fastActions(w)
	names := addMachines(t, w, 12, "")
	failing := fmt.Sprintf("%040x", 0xb0000+7)
	w.mde.Sim.Outcome = func(a defender.MachineAction) defender.MachineAction {
		if a.MachineID == failing {
			a.Status, a.Error = defender.StatusFailed, json.RawMessage(`"Device is offline"`)
		}
		return a
	}
	runApp(t, w, map[string]string{"APPROVER_USER_IDS": "U0BOB,U0CAROL", "RATE_LIMIT_PER_MINUTE": "600"})

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", strings.Join(names, ", ")+" full worm spreading over SMB")
	card := waitCard(t, w)
	if txt := card.AllText(); !strings.Contains(txt, "isolate 12 machines") || !strings.Contains(txt, names[0]) || !strings.Contains(txt, "Windows11") {
		t.Fatalf("card does not show the count and first machines:\n%s", txt)
	}
	waitThreadText(t, w, card.TS, names[11])
	top := 0
	for _, m := range w.fs.Messages("C1") { // replies included: count the others
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			top++
		}
	}
	if top != 1 {
		t.Fatalf("%d top-level messages; want one card", top)
	}
	for _, op := range []string{fakemde.OpMachines, fakemde.OpActions} {
		if n := w.mde.Count(op); n < 1 || n > 3 {
			t.Errorf("%d %s look-ups for 12 machines; want 1 to 3", n, op)
		}
	}
	if n := w.mde.Count(fakemde.OpMachine); n != 0 {
		t.Errorf("%d single-machine reads; want none", n)
	}

	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	waitThreadText(t, w, card.TS, "(1 of 2)")
	if n := w.mde.Count(fakemde.OpIsolate); n != 0 {
		t.Fatalf("MDE called %d times after one approval of two", n)
	}
	lookups := w.mde.Count(fakemde.OpActions)
	w.fs.ClickButton("U0CAROL", "C1", card.TS, bot.ActionApprove)
	waitThreadText(t, w, card.TS, "Batch b-1 finished: 11 isolated · 1 failed")
	waitThreadText(t, w, card.TS, "failed at MDE (Failed): error: Device is offline (1): outbreak-07.contoso.local")
	if per := isolatedOnce(t, w); len(per) != 12 {
		t.Errorf("%d machines isolated; want 12", len(per))
	}
	// Following 12 actions: a read at the start, then after 100, 200,
	// 400 ms … until all ended about 0.5 s after their creation.
	reads := w.mde.Count(fakemde.OpActions) - lookups
	t.Logf("%d status reads for 12 actions", reads)
	if reads < 1 || reads > 6 {
		t.Errorf("%d status reads for 12 actions; want a few batched ones", reads)
	}
	statuses := map[string]int{}
	for _, e := range history(t, w, "r-1") {
		if e.Type == store.EventStatus {
			statuses[e.MachineID]++
		}
	}
	if len(statuses) != 12 {
		t.Errorf("final status audited for %d machines; want 12: %v", len(statuses), statuses)
	}
	for m, n := range statuses {
		if n != 1 {
			t.Errorf("machine %s's outcome audited %d times", m, n)
		}
	}
	if _, err := w.fs.WaitMessages("C1", func(ms []fakeslack.Message) bool {
		for _, m := range ms {
			if m.TS == card.TS && strings.Contains(m.AllText(), "finished · 12/12 sent · 11 isolated · 1 failed") {
				return true
			}
		}
		return false
	}, wait); err != nil {
		now, _ := w.fs.Message("C1", card.TS)
		t.Errorf("final card: %v\n%s", err, now.AllText())
	}
}

// TestOutbreakUnknownAndAmbiguous: a name that matches nothing and one
// that matches two machines are listed in the thread and left out; the
// rest goes on with one approver.
func TestOutbreakUnknownAndAmbiguous(t *testing.T) {
	w := newWorld(t)
	names := addMachines(t, w, 2, "")
	fastActions(w)
	runApp(t, w, map[string]string{"RATE_LIMIT_PER_MINUTE": "600"})

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", strings.Join(names, ",")+",nosuch-99.contoso.local,kiosk.contoso.local full worm")
	card := waitCard(t, w)
	if !strings.Contains(card.AllText(), "isolate 2 machines") {
		t.Fatalf("card: %s", card.AllText())
	}
	waitThreadText(t, w, card.TS, "nosuch-99.contoso.local — left out: no machine has this name")
	waitThreadText(t, w, card.TS, "kiosk.contoso.local — left out: several machines match (2)")
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	waitThreadText(t, w, card.TS, "finished: 2 isolated · 0 failed · 2 skipped")
	if per := isolatedOnce(t, w); len(per) != 2 {
		t.Errorf("%d machines isolated; want 2", len(per))
	}
}

// TestOutbreakTag: tag:<MDE tag> isolates the machines carrying it, one
// look-up for the tag.
func TestOutbreakTag(t *testing.T) {
	w := newWorld(t)
	fastActions(w)
	addMachines(t, w, 3, "Outbreak-7")
	runApp(t, w, map[string]string{"RATE_LIMIT_PER_MINUTE": "600"})

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "tag:Outbreak-7 selective beaconing")
	card := waitCard(t, w)
	if !strings.Contains(card.AllText(), "isolate 3 machines") {
		t.Fatalf("card: %s", card.AllText())
	}
	if n := w.mde.Count(fakemde.OpMachines); n != 1 {
		t.Errorf("%d machine look-ups for a tag; want 1", n)
	}
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	waitThreadText(t, w, card.TS, "finished: 3 isolated")
	if per := isolatedOnce(t, w); len(per) != 3 {
		t.Errorf("%d machines isolated; want 3", len(per))
	}
}

// TestOutbreakOverBulkMax: a tag naming more machines than BULK_MAX is
// refused with the count, with no card.
func TestOutbreakOverBulkMax(t *testing.T) {
	w := newWorld(t)
	addMachines(t, w, 6, "Wide")
	runApp(t, w, map[string]string{"BULK_MAX": "5"})

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "tag:Wide full worm")
	if _, err := w.fs.WaitEphemeral("U0ALICE", func(es []fakeslack.Ephemeral) bool {
		return len(es) > 0 && strings.Contains(es[len(es)-1].Text+string(es[len(es)-1].Blocks), "6 machines")
	}, wait); err != nil {
		t.Fatalf("no refusal with the count: %v %+v", err, w.fs.Ephemerals("U0ALICE"))
	}
	if n := len(w.fs.Messages("C1")); n != 0 {
		t.Errorf("%d messages posted; want none", n)
	}
}

// TestOutbreakStop: Stop by someone neither requester nor approver is
// refused; the requester's Stop ends the batch with the rest unsent.
func TestOutbreakStop(t *testing.T) {
	w := newWorld(t)
	fastActions(w)
	// The two-a-minute limit holds for reads too: the one read left this
	// minute, after Stop, must find the two actions ended.
	w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = 0, time.Millisecond
	addMachines(t, w, 4, "Slow")
	// Two calls a minute: two go at once, the rest wait a minute, so the
	// batch is still running when Stop is clicked.
	runApp(t, w, map[string]string{"RATE_LIMIT_PER_MINUTE": "2", "ALLOWED_USER_IDS": "U0ALICE,U0DAVE"})

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "tag:Slow full worm")
	card := waitCard(t, w)
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	if _, err := w.fs.WaitMessages("C1", func(ms []fakeslack.Message) bool {
		for _, m := range ms {
			if _, stop := m.Button(bot.ActionStop); stop && m.TS == card.TS {
				return true
			}
		}
		return false
	}, wait); err != nil {
		t.Fatalf("no Stop button: %v", err)
	}
	// Stop once the limit's two calls are out, so what Stop keeps back is
	// exactly the two that wait for the next minute.
	if err := w.mde.WaitCount(fakemde.OpIsolate, 2, wait); err != nil {
		t.Fatal(err)
	}
	w.fs.ClickButton("U0DAVE", "C1", card.TS, bot.ActionStop)
	if _, err := w.fs.WaitEphemeral("U0DAVE", func(es []fakeslack.Ephemeral) bool { return len(es) > 0 }, wait); err != nil {
		t.Fatalf("Dave's Stop was not refused: %v", err)
	}
	w.fs.ClickButton("U0ALICE", "C1", card.TS, bot.ActionStop)
	// The two sent before Stop are still followed to their end.
	waitThreadText(t, w, card.TS, "isolated (2):")
	if n := w.mde.Count(fakemde.OpIsolate); n != 2 {
		t.Errorf("%d isolate calls after Stop; want the 2 the limit let through", n)
	}
	if now, _ := w.fs.Message("C1", card.TS); !strings.Contains(now.AllText(), "stopped by") || !strings.Contains(now.AllText(), "2 not sent") {
		t.Errorf("card does not say stopped: %s", now.AllText())
	}
}

// TestOutbreakRelease: /unisolate takes a list or tag the same way: one
// card, one approval, exactly one release call per machine; a machine whose
// newest action is a succeeded release is skipped, and protection does not
// restrict releases.
func TestOutbreakRelease(t *testing.T) {
	w := newWorld(t)
	fastActions(w)
	addMachines(t, w, 3, "Recovered")
	// The first machine was released already: nothing to release.
	first := fmt.Sprintf("%040x", 0xb0000+1)
	if _, err := w.mde.Sim.Unisolate(context.Background(), nil, first, "released earlier"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) { // poll with a deadline
		acts, _ := w.mde.Sim.MachineActions(context.Background(), first)
		if len(acts) == 1 && acts[0].Status == defender.StatusSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the earlier release did not succeed: %+v", acts)
		}
	}
	runApp(t, w, map[string]string{"RATE_LIMIT_PER_MINUTE": "600", "PROTECTED_MACHINES": "tag:Recovered"})

	w.fs.SlashCommand("U0ALICE", "C1", "/unisolate", "tag:Recovered cleaned and verified")
	card := waitCard(t, w)
	if txt := card.AllText(); !strings.Contains(txt, "release 2 machines") || strings.Contains(txt, "Protected") {
		t.Fatalf("card: %s", txt)
	}
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	waitThreadText(t, w, card.TS, "finished: 2 released")
	if n, isolates := w.mde.Count(fakemde.OpUnisolate), w.mde.Count(fakemde.OpIsolate); n != 2 || isolates != 0 {
		t.Errorf("%d release and %d isolate calls; want 2 releases (the released machine skipped), no isolation", n, isolates)
	}
}

// history is request id's audit events, read from the world's Redis under
// the test's prefix (as w.config sets it).
func history(t testing.TB, w *world, id string) []store.Event {
	t.Helper()
	approvals := store.NewApprovals(w.rs.Client(), store.ApprovalsConfig{Prefix: strings.ToLower(t.Name()),
		Retention: config.DefaultAuditRetention, AuditMaxLen: config.DefaultAuditMaxLen})
	evs, err := approvals.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
