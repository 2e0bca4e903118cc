package main

import (
	"context"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/store"
)

// TestSurvivorTakesOverQueued: the replica holding a request queued behind
// the rate limit is SIGKILLed. When the queued slot comes (plus the lease),
// the surviving replica's scheduler takes the request over, finds no MDE
// action for it and sends it: exactly once, never early. The dead
// replica's reserved slot stays spent (nobody can know it was not used), so
// the survivor queues for the next window: about two minutes in all.
func TestSurvivorTakesOverQueued(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	// Creating a request reads MDE (machine, actions); with one call per
	// minute only the first could be created, so a replica with the default
	// limits posts the cards and leaves.
	setup := h.start("setup")
	setup.waitReady(t)
	ms := h.addMachines(2)
	for _, m := range ms {
		h.isolate("U0ANA1", m)
	}
	cards := h.waitCards(ms, 20*time.Second)
	setup.stop(t, 20*time.Second)

	knobs := []string{"RATE_LIMIT_PER_MINUTE", "1", "RATE_LIMIT_PER_HOUR", "10", "MDE_CALL_TIMEOUT", "3s"}
	a, b := h.start("replica-a", knobs...), h.start("replica-b", knobs...)
	a.waitReady(t)
	b.waitReady(t)
	if err := h.fs.WaitConnections(2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	first, second := cards[ms[0].ComputerDNSName], cards[ms[1].ComputerDNSName]
	id1, _ := first.Button(bot.ActionApprove)
	id2, _ := second.Button(bot.ActionApprove)
	// The fake deals envelopes round-robin over the two connections: a
	// harmless envelope between the clicks sends both clicks to one replica,
	// so the status follower of the first request dies with it too.
	// The first request must have taken the minute's only slot before the
	// second is approved.
	h.fs.ClickButton("U0MGR1", chanSOC, first.TS, bot.ActionApprove)
	if _, err := h.fs.WaitThread(chanSOC, first.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Sent to MDE")
	}, 20*time.Second); err != nil {
		t.Fatalf("first request not sent: %v\n%s", err, h.allTails())
	}
	if _, err := h.fs.WaitAck(h.fs.SlashCommand("U0ANA1", chanSOC, "/isolate", "help").ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	h.fs.ClickButton("U0MGR1", chanSOC, second.TS, bot.ActionApprove)
	th, err := h.fs.WaitThread(chanSOC, second.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Queued behind the MDE rate limit")
	}, 20*time.Second)
	if err != nil {
		t.Fatalf("second request not queued: %v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, second.TS)), h.allTails())
	}
	var runAt time.Time
	for _, r := range th {
		if g := queuedAt.FindStringSubmatch(r.AllText()); g != nil {
			runAt = clockAfter(r.PostedAt, g[1], g[2], g[3])
		}
	}
	// The queue notice can reach the thread before the approval's log line
	// reaches the test: poll the logs with a deadline.
	var holder, survivor *proc
	for deadline := time.Now().Add(10 * time.Second); holder == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, p := range []*proc{a, b} {
			if p.hasLog("message", "approved", "request_id", id2.Value) {
				holder = p
			}
		}
	}
	if holder == nil || !holder.hasLog("message", "approved", "request_id", id1.Value) {
		t.Fatalf("both approvals should have landed on one replica (round-robin delivery)\n%s", h.allTails())
	}
	survivor = a
	if holder == a {
		survivor = b
	}
	holder.kill(t)
	if n := h.mde.Count(fakemde.OpIsolate); n != 1 {
		t.Fatalf("%d isolate POSTs before the queued slot, want 1", n)
	}

	th, err = h.fs.WaitThread(chanSOC, second.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Sent to MDE")
	}, 150*time.Second)
	if err != nil {
		t.Fatalf("survivor did not send the queued request: %v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, second.TS)), h.allTails())
	}
	posts := h.mde.Requests(fakemde.OpIsolate)
	if len(posts) != 2 {
		t.Fatalf("%d isolate POSTs, want 2 (one per request)", len(posts))
	}
	// hh:mm:ss in the thread truncates the slot: one second of slack.
	if posts[1].At.Before(runAt) || posts[1].At.Sub(posts[0].At) < 60*time.Second {
		t.Errorf("queued call sent at %s, %s after the first; its slot was %s", posts[1].At.Format(time.TimeOnly),
			posts[1].At.Sub(posts[0].At).Round(time.Millisecond), runAt.Format(time.TimeOnly))
	}
	if !survivor.hasLog("message", "took over a stranded request; reconciling with MDE before any call", "request_id", id2.Value) {
		t.Errorf("%s did not log the takeover of %s", survivor.name, id2.Value)
	}
	survivor.stop(t, 20*time.Second)
	req, err := h.store().Get(context.Background(), id2.Value)
	// Stopped while following: executing with its action, for the next
	// replica to follow; or done if the action finished first.
	if err != nil || (req.State != store.Done && req.State != store.Executing) || req.MachineActionID == "" {
		t.Errorf("%s in Redis: %q with action %q, %v; want it to hold the MDE action", id2.Value, req.State, req.MachineActionID, err)
	}
	acts, err := h.mde.Sim.MachineActions(context.Background(), ms[1].ID)
	if err != nil || len(acts) != 1 || acts[0].ID != req.MachineActionID {
		t.Errorf("MDE actions for the queued machine: %d (err %v); want exactly the request's one", len(acts), err)
	}
}

// TestSurvivorTakesOverExecuting: a replica is SIGKILLed while its isolate
// POST is in flight (MDE hangs after acting). Once the request's lease has
// passed, the surviving replica's scheduler takes it over, finds MDE's
// action by its marker and finishes the request without a second POST.
//
// MDE_CALL_TIMEOUT=5s keeps the lease (twice the call timeout) short.
func TestSurvivorTakesOverExecuting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	lease := []string{"MDE_CALL_TIMEOUT", "5s"}
	a, b := h.start("replica-a", lease...), h.start("replica-b", lease...)
	a.waitReady(t)
	b.waitReady(t)
	if err := h.fs.WaitConnections(2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ms := h.addMachines(1)
	m := ms[0]
	h.isolate("U0ANA1", m)
	card := h.waitCards(ms, 20*time.Second)[m.ComputerDNSName]
	id, _ := card.Button(bot.ActionApprove)

	h.mde.Hang(fakemde.OpIsolate, 5*time.Minute) // MDE acts, then never answers
	h.fs.ClickButton("U0MGR1", chanSOC, card.TS, bot.ActionApprove)
	if err := h.mde.WaitCount(fakemde.OpIsolate, 1, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, h.allTails())
	}
	var victim, survivor *proc
	waitUntil(t, 10*time.Second, "the replica that approved "+id.Value, func() bool {
		for _, p := range []*proc{a, b} {
			if p.hasLog("message", "approved", "request_id", id.Value) {
				victim = p
			}
		}
		return victim != nil
	})
	survivor = a
	if victim == a {
		survivor = b
	}
	killedAt := time.Now()
	victim.kill(t)

	th, err := h.fs.WaitThread(chanSOC, card.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Found the MDE Isolate action for this request")
	}, 100*time.Second)
	if err != nil {
		t.Fatalf("survivor did not finish the request: %v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, card.TS)), h.allTails())
	}
	t.Logf("survivor finished %s %s after the kill", id.Value, time.Since(killedAt).Round(time.Second))
	if !threadHas(th, "nothing was sent again") {
		t.Errorf("thread does not say nothing was sent again:\n%s", threadText(th))
	}
	if !survivor.hasLog("message", "took over a stranded request; reconciling with MDE before any call", "request_id", id.Value) {
		t.Errorf("%s did not log the takeover", survivor.name)
	}
	req, err := h.store().Get(context.Background(), id.Value)
	// Done once the action is final; until then it stays executing, followed.
	if err != nil || (req.State != store.Done && req.State != store.Executing) || req.MachineActionID == "" {
		t.Errorf("request in Redis: state %q action %q err %v; want it to hold the MDE action", req.State, req.MachineActionID, err)
	}

	survivor.stop(t, 20*time.Second)
	acts, err := h.mde.Sim.MachineActions(context.Background(), m.ID)
	if err != nil || len(acts) != 1 {
		t.Fatalf("MDE has %d actions for the machine (err %v), want exactly 1", len(acts), err)
	}
	if acts[0].ID != req.MachineActionID {
		t.Errorf("request records action %s, MDE has %s", req.MachineActionID, acts[0].ID)
	}
	if n := h.mde.Count(fakemde.OpIsolate); n != 1 {
		t.Errorf("%d isolate POSTs, want exactly 1", n)
	}
}
