package app

import (
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/store"
)

// TestOutbreakFollowSurvivesReplicaDeath: the replica following a batch
// dies (every context cancelled, as a crash) while MDE still works on the
// sent actions. Another replica takes the request over once its hold
// lapses, follows the actions to their end, posts the one summary, audits
// each outcome once and ends the request.
func TestOutbreakFollowSurvivesReplicaDeath(t *testing.T) {
	w := newWorld(t)
	fastActions(w)
	w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = time.Second, 3*time.Second // still with MDE when the first replica dies
	addMachines(t, w, 3, "Pair")
	// A claim the dead replica held comes back after 2 s (twice the call timeout).
	env := map[string]string{"RATE_LIMIT_PER_MINUTE": "600", "MDE_CALL_TIMEOUT": "1s"}
	first, _, cancel, done := w.running(t, env)

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "tag:Pair full worm")
	card := waitCard(t, w)
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	if err := w.mde.WaitCount(fakemde.OpIsolate, 3, wait); err != nil {
		t.Fatal(err)
	}
	first.Service().Abort()
	cancel()
	<-done
	if anyText(w.fs.Thread("C1", card.TS), "Batch b-1") {
		t.Fatalf("the first replica summarised before MDE ended the actions: %v", threadTexts(w, card.TS))
	}

	runApp(t, w, env)
	waitThreadText(t, w, card.TS, "Batch b-1 finished: 3 isolated · 0 failed")
	summaries := 0
	for _, m := range w.fs.Thread("C1", card.TS) {
		if strings.Contains(m.AllText(), "Batch b-1") {
			summaries++
		}
	}
	if summaries != 1 {
		t.Errorf("%d summaries in the thread; want exactly one", summaries)
	}
	if n := w.mde.Count(fakemde.OpIsolate); n != 3 {
		t.Errorf("%d isolate calls; want 3", n)
	}
	var statuses, ends int
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) { // poll with a deadline
		statuses, ends = 0, 0
		for _, e := range history(t, w, "r-1") {
			switch e.Type {
			case store.EventStatus:
				statuses++
			case store.EventDone:
				ends++
			}
		}
		if ends > 0 || time.Now().After(deadline) {
			break
		}
	}
	if statuses != 3 || ends != 1 {
		t.Errorf("%d outcomes and %d ends audited; want 3 and 1", statuses, ends)
	}
}

// TestOutbreakBatchLost: when the batch's record disappears from Redis
// (flushed, or past AUDIT_RETENTION) while its actions are followed, the
// request ends failed with a reply saying so, instead of being held and
// retried for ever.
func TestOutbreakBatchLost(t *testing.T) {
	w := newWorld(t)
	fastActions(w)
	w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = time.Hour, 2*time.Hour // still with MDE
	addMachines(t, w, 2, "Lost")
	runApp(t, w, map[string]string{"RATE_LIMIT_PER_MINUTE": "600"})

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "tag:Lost full worm")
	card := waitCard(t, w)
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	if err := w.mde.WaitCount(fakemde.OpIsolate, 2, wait); err != nil {
		t.Fatal(err)
	}
	rdb := w.rs.Client()
	keys, err := rdb.Keys(t.Context(), "{"+strings.ToLower(t.Name())+":b:b-1}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("batch keys %v, %v", keys, err)
	}
	if err := rdb.Del(t.Context(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
	waitThreadText(t, w, card.TS, "Batch b-1: its record is gone")
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) { // poll with a deadline
		evs := history(t, w, "r-1")
		if e := evs[len(evs)-1]; e.Type == store.EventFailed || time.Now().After(deadline) {
			if e.Type != store.EventFailed {
				t.Errorf("last audit event %+v; want the request failed", e)
			}
			break
		}
	}
}
