package bot_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/store"
)

// End-to-end tests of "Stop a mistake" (issue 10): Cancel and Release from
// the card, an action started in the portal between request and approval,
// and types a machine cannot take.

// press clicks button actionID of request id on the card at ts. Until the
// card renders the follow-through buttons it carries Approve's block id.
func (w *e2eWorld) press(user, ts, id, actionID string) {
	w.fs.Click(user, "C1", ts, actionID, BlockIDPrefix+id, id)
}

// historyHas waits until id's audit trail has an event matching ok.
func (w *e2eWorld) historyHas(t *testing.T, id, what string, ok func(store.Event) bool) {
	t.Helper()
	waitUntil(t, id+": "+what, func() bool {
		h, err := w.store.History(context.Background(), id)
		return err == nil && slices.ContainsFunc(h, ok)
	})
}

// TestE2ECancelOfflineFromCard: an offline device's isolation stays
// Pending; a stranger's Cancel is refused privately and audited, the
// requester's cancels the action in MDE with a comment naming them and the
// request, and the request ends failed with the cancellation in its trail.
func TestE2ECancelOfflineFromCard(t *testing.T) {
	w := newWorld(t)
	w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = time.Hour, 2*time.Hour // offline: MDE retries for days
	w.start(e2eOptions{})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full offline laptop")
	card, id := w.card(t, "host-42.corp.example")
	w.fs.ClickButton("U0BOB", "C1", card.TS, ActionApprove)
	var r store.Request
	waitUntil(t, id+" follows its action", func() bool {
		var err error
		r, err = w.store.Get(context.Background(), id)
		return err == nil && r.MachineActionID != ""
	})

	w.press("U0DAVE", card.TS, id, bot.ActionCancel)
	w.ephemeral(t, "U0DAVE", "only the requester")
	w.historyHas(t, id, "refused click", func(e store.Event) bool { return e.Type == store.EventClickRefused && e.Actor == "U0DAVE" })
	if n := w.mde.Count(fakemde.OpCancel); n != 0 {
		t.Fatalf("%d cancel calls after a refused click", n)
	}

	w.press("U0ALICE", card.TS, id, bot.ActionCancel)
	w.state(t, id, store.Failed)
	cancels := w.mde.Requests(fakemde.OpCancel)
	if len(cancels) != 1 || !strings.Contains(cancels[0].Path, r.MachineActionID) {
		t.Fatalf("cancel requests %+v", cancels)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(cancels[0].Body), &body); err != nil || !strings.HasPrefix(body["Comment"], "[isolate-bot "+id+"] ") ||
		!strings.Contains(body["Comment"], "U0ALICE") {
		t.Fatalf("cancel body %q (%v)", cancels[0].Body, err)
	}
	if a, err := w.mde.Sim.MachineAction(context.Background(), r.MachineActionID); err != nil || a.Status != defender.StatusCancelled {
		t.Fatalf("MDE action %+v, %v", a, err)
	}
	w.historyHas(t, id, "cancelled by the requester", func(e store.Event) bool {
		return e.Type == store.EventCancelled && e.Actor == "U0ALICE" && e.ActionID == r.MachineActionID
	})
	w.thread(t, card.TS, "cancelled")
	if m, _ := w.fs.Message("C1", card.TS); !strings.Contains(strings.ToLower(m.AllText()), "cancelled") {
		t.Errorf("the card does not say cancelled:\n%s", m.AllText())
	}
}

// TestE2EPortalActionBetweenRequestAndApproval: someone isolates the
// machine in the portal after the request was made; on approval the
// request follows that action to its end instead of failing, and MDE
// holds no second action.
func TestE2EPortalActionBetweenRequestAndApproval(t *testing.T) {
	w := newWorld(t)
	w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = 300*time.Millisecond, 600*time.Millisecond
	w.start(e2eOptions{})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full beaconing")
	card, id := w.card(t, "host-42.corp.example")
	portal, err := w.mde.Sim.Isolate(context.Background(), nil, machineA, defender.Full, "isolated by hand in the portal")
	if err != nil {
		t.Fatal(err)
	}
	w.fs.ClickButton("U0BOB", "C1", card.TS, ActionApprove)
	r := w.state(t, id, store.Done)
	if r.MachineActionID != portal.ID {
		t.Fatalf("request follows %q, want the portal's %s", r.MachineActionID, portal.ID)
	}
	// Approved at once, the request's own look-up is fresh: its one POST
	// is refused by MDE (400 ActiveRequestAlreadyExists) and nothing new
	// is created.
	if posts := w.mde.Posts(); len(posts) > 1 || (len(posts) == 1 && posts[0].Status != 400) {
		t.Fatalf("MDE POSTs %+v; want at most one, refused", posts)
	}
	if acts, err := w.mde.Sim.MachineActions(context.Background(), machineA); err != nil || len(acts) != 1 {
		t.Fatalf("MDE holds %d actions (%v); want only the portal's", len(acts), err)
	}
	w.historyHas(t, id, "following the portal's action", func(e store.Event) bool {
		return e.Type == store.EventFollowing && e.ActionID == portal.ID
	})
	w.thread(t, card.TS, "already being isolated")
}

// TestE2EReleaseFromCard: Release on a succeeded isolation's card posts a
// release card in the channel, linked from the isolation's thread; the
// clicker cannot approve it, an approver can, and MDE gets the unisolate.
func TestE2EReleaseFromCard(t *testing.T) {
	w := newWorld(t)
	w.start(e2eOptions{})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full beaconing")
	card, id := w.card(t, "host-42.corp.example")
	w.fs.ClickButton("U0BOB", "C1", card.TS, ActionApprove)
	w.state(t, id, store.Done)

	w.press("U0ALICE", card.TS, id, bot.ActionRelease)
	relCard, relID := w.card(t, "host-42.corp.example")
	if relID == id || relCard.TS == card.TS {
		t.Fatalf("no new card for the release (%s)", relID)
	}
	rel := w.state(t, relID, store.Pending)
	if rel.Command != store.Unisolate || rel.Requester != "U0ALICE" || rel.MachineID != machineA {
		t.Fatalf("release request %+v", rel)
	}
	w.thread(t, card.TS, fakeslack.Permalink("C1", relCard.TS))
	w.historyHas(t, id, "release requested", func(e store.Event) bool {
		return e.Type == store.EventReleaseRequested && e.Actor == "U0ALICE" && strings.HasPrefix(e.Reason, relID+" ")
	})

	w.fs.ClickButton("U0ALICE", "C1", relCard.TS, ActionApprove)
	w.ephemeral(t, "U0ALICE", "two-person rule")
	w.fs.ClickButton("U0CAROL", "C1", relCard.TS, ActionApprove)
	w.state(t, relID, store.Done)
	if posts := w.mde.Posts(); len(posts) != 2 || posts[1].Op != fakemde.OpUnisolate || posts[1].MachineID != machineA {
		t.Fatalf("MDE POSTs %+v", posts)
	}
}

// TestE2ETypeRefusedBeforeApproval: a type the machine cannot take is
// refused to the requester with the type that works, and no card is
// posted.
func TestE2ETypeRefusedBeforeApproval(t *testing.T) {
	linux := e2eMachine(machineB, "lnx-7.corp.example")
	linux.OSPlatform = "Linux"
	w := newWorld(t, e2eMachine(machineA, "host-42.corp.example"), linux)
	w.start(e2eOptions{})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "lnx-7.corp.example selective x")
	w.ephemeral(t, "U0ALICE", "/isolate lnx-7.corp.example full")
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example unmanaged x")
	w.ephemeral(t, "U0ALICE", "`full or selective`")
	if ms := w.fs.Messages("C1"); len(ms) != 0 {
		t.Fatalf("%d messages in the channel; want no card", len(ms))
	}
}
