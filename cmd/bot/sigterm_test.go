package main

import (
	"context"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/fakemde"
)

// TestSIGTERMMidCall: SIGTERM 300 ms into an isolate call that MDE answers
// after 2 s. The process exits 0 within 10 s, and the call's answer is not
// lost: the action id is in the card's thread (issue 9, item 11).
func TestSIGTERMMidCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	p := h.start("bot")
	p.waitReady(t)
	ms := h.addMachines(1)
	m := ms[0]
	h.isolate("U0ANA1", m)
	card := h.waitCards(ms, 20*time.Second)[m.ComputerDNSName]

	h.mde.Hang(fakemde.OpIsolate, 2*time.Second) // MDE acts, then answers 2 s later
	h.fs.ClickButton("U0MGR1", chanSOC, card.TS, bot.ActionApprove)
	if err := h.mde.WaitCount(fakemde.OpIsolate, 1, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.tail())
	}
	time.Sleep(300 * time.Millisecond) // the scenario: SIGTERM 300 ms into the call
	start := time.Now()
	p.stop(t, 10*time.Second) // fails unless it exits 0 within 10 s
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))

	acts, err := h.mde.Sim.MachineActions(context.Background(), m.ID)
	if err != nil || len(acts) != 1 {
		t.Fatalf("MDE has %d actions (err %v), want 1", len(acts), err)
	}
	if th := h.fs.Thread(chanSOC, card.TS); !threadHas(th, acts[0].ID) {
		t.Fatalf("the thread lacks action %s:\n%s\n%s", acts[0].ID, threadText(th), p.tail())
	}
}
