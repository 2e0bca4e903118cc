package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/store"
)

// TestShutdownLetsInFlightCallFinish: the app is stopped 300 ms into an
// isolate call that MDE answers after 2 s. Run returns cleanly within 10 s,
// and the call's answer is not lost: the action id is on the request in
// Redis and in the card's thread (issue 9, item 11).
func TestShutdownLetsInFlightCallFinish(t *testing.T) {
	w := newWorld(t)
	_, _, cancel, done := w.running(t, nil)
	defer cancel()
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "web-01.contoso.local full beaconing")
	card := waitCard(t, w)
	w.mde.Hang(fakemde.OpIsolate, 2*time.Second) // MDE acts, then answers 2 s later
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	if err := w.mde.WaitCount(fakemde.OpIsolate, 1, wait); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the scenario: stop 300 ms into the call
	start := time.Now()
	cancel()
	runReturned(t, done)
	t.Logf("Run returned %s after the stop", time.Since(start).Round(time.Millisecond))

	acts, err := w.mde.Sim.MachineActions(context.Background(), defender.SimWeb01)
	if err != nil || len(acts) != 1 {
		t.Fatalf("MDE has %d actions (err %v), want 1", len(acts), err)
	}
	id := acts[0].ID
	req, err := store.NewApprovals(w.rs.Client(), store.ApprovalsConfig{Prefix: strings.ToLower(t.Name()), Retention: config.DefaultAuditRetention, AuditMaxLen: config.DefaultAuditMaxLen}).ForMachine(context.Background(), defender.SimWeb01)
	if err != nil || req.MachineActionID != id {
		t.Fatalf("request in Redis %+v (err %v); want action %s recorded", req, err, id)
	}
	found := false
	for _, m := range w.fs.Thread("C1", card.TS) {
		found = found || strings.Contains(m.AllText(), id)
	}
	if !found {
		t.Fatalf("the thread does not carry action %s", id)
	}
}
