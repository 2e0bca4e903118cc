package commands

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/testclock"
	"github.com/soc/isolate-bot/store"
)

// hasStatus reports whether id's audit trail has a status event for status.
func (e *env) hasStatus(id, status string) bool {
	return slices.ContainsFunc(e.events(id), func(ev store.Event) bool { return ev.Type == store.EventStatus && ev.Reason == status })
}

// TestApproveIsolatesOnce: approval → exactly one Isolate with the exact
// marker, the action id recorded, status followed to Succeeded.
func TestApproveIsolatesOnce(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "done", func() bool { return e.get(r.ID).MachineActionID != "" })
	e.clk.Advance(3 * time.Second) // simulator: Pending for 2 s
	waitFor(t, "status InProgress reported", func() bool { return e.hasStatus(r.ID, defender.StatusInProgress) })
	e.clk.Advance(time.Minute)
	waitFor(t, "status Succeeded reported", func() bool { return e.hasStatus(r.ID, defender.StatusSucceeded) })
	e.svc.Wait()

	if n := e.posts.Load(); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
	wantComment := "[isolate-bot r-1] requested by UANALYST via Slack, approved by UBOSS: suspicious beaconing"
	if e.comments[0] != wantComment {
		t.Fatalf("MDE comment %q\nwant %q", e.comments[0], wantComment)
	}
	acts := simActions(t, e.sim, defender.SimWeb01)
	got := e.get(r.ID)
	if len(acts) != 1 || got.MachineActionID != acts[0].ID || got.DecidedBy != boss || got.State != store.Done {
		t.Fatalf("request %+v, actions %+v", got, acts)
	}
	if n := e.rec.replyActions(acts[0].ID); n < 2 {
		t.Fatalf("%d replies carry the action, want the creation and status changes", n)
	}
	if ev, ok := e.event(r.ID, store.EventMDECall); !ok || ev.StatusCode != 201 || ev.ActionID != acts[0].ID {
		t.Fatalf("MDE call event %+v (found %v)", ev, ok)
	}
	h := e.history(r.ID)
	for _, want := range []string{store.EventCreated, store.EventApproved, store.EventMDECall, store.EventDone, store.EventStatus} {
		if !slices.Contains(h, want) {
			t.Fatalf("audit %v lacks %s", h, want)
		}
	}
	if u := e.rec.cardUpdates(); len(u) == 0 || u[0].Request.State != store.Approved {
		t.Fatalf("card not updated to approved: %+v", u)
	}
}

// TestThrottledRetries: a 429 is audited, the request records when it runs
// again (Retry-After), and MDE ends up with one action.
func TestThrottledRetries(t *testing.T) {
	e := newEnv(t)
	e.setOnPost(func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
		if n == 1 {
			return defender.MachineAction{}, &defender.APIError{Op: "isolate", Status: 429, Kind: defender.ErrThrottled, RetryAfter: 20 * time.Millisecond}
		}
		return real()
	})
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the 429 to be audited", func() bool {
		return slices.ContainsFunc(e.events(r.ID), func(ev store.Event) bool { return ev.StatusCode == 429 })
	})
	e.clk.Advance(20 * time.Millisecond) // the Retry-After, on the Service's clock
	got := e.finish(r.ID)
	if got.State != store.Done || e.posts.Load() != 2 || len(simActions(t, e.sim, defender.SimWeb01)) != 1 {
		t.Fatalf("state %s, %d POSTs", got.State, e.posts.Load())
	}
	if !got.RunAt.Equal(testclock.Start.Add(20 * time.Millisecond)) {
		t.Fatalf("RunAt %v, want Retry-After from the 429", got.RunAt)
	}
	if ev, ok := e.event(r.ID, store.EventMDECall); !ok || ev.StatusCode != 201 {
		t.Fatalf("last MDE call event %+v", ev)
	}
	if !slices.ContainsFunc(e.events(r.ID), func(ev store.Event) bool { return ev.Type == store.EventMDECall && ev.StatusCode == 429 }) {
		t.Fatalf("the 429 is not audited: %v", e.history(r.ID))
	}
}

// TestOutcomeUnknown: the POST reached MDE but the answer was lost;
// reconciliation finds the action by its marker and nothing is re-sent.
// When MDE has no record, the POST is sent once more; twice unknown fails.
func TestOutcomeUnknown(t *testing.T) {
	unknown := &defender.APIError{Op: "isolate", Kind: defender.ErrOutcomeUnknown}
	tests := []struct {
		name      string
		hook      postHook
		wantState store.State
		posts     int32
		actions   int
	}{
		{"created then lost", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			_, _ = real()
			return defender.MachineAction{}, unknown
		}, store.Done, 1, 1},
		{"not received, resent", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			if n == 1 {
				return defender.MachineAction{}, unknown
			}
			return real()
		}, store.Done, 2, 1},
		{"twice unknown", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			return defender.MachineAction{}, unknown
		}, store.Failed, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.setOnPost(tt.hook)
			r := e.request()
			e.click(e.svc, r.ID, boss, true)
			// Reconciling looks for a minute after each unknown outcome.
			e.drive(r.ID+" sent or ended", 5*time.Second, func() bool { r := e.get(r.ID); return r.MachineActionID != "" || r.State.Terminal() })
			got := e.finish(r.ID)
			acts := simActions(t, e.sim, defender.SimWeb01)
			if got.State != tt.wantState || e.posts.Load() != tt.posts || len(acts) != tt.actions {
				t.Fatalf("state %s, %d POSTs, %d actions", got.State, e.posts.Load(), len(acts))
			}
			if tt.actions == 1 && got.MachineActionID != acts[0].ID {
				t.Fatalf("request records action %q, MDE has %q", got.MachineActionID, acts[0].ID)
			}
		})
	}
}

func TestMDEFailures(t *testing.T) {
	tests := []struct {
		name string
		err  *defender.APIError
	}{
		{"forbidden", &defender.APIError{Status: 403, Code: "Forbidden", Target: "corr-403", Kind: defender.ErrForbidden}},
		{"bad request", &defender.APIError{Status: 400, Code: "InvalidInput", Message: "OS not supported", Target: "corr-400", Kind: defender.ErrBadRequest}},
		{"credentials refused", &defender.APIError{Status: 401, Target: "corr-401", Kind: defender.ErrUnauthorized}},
		{"unknown machine", &defender.APIError{Status: 404, Code: "ResourceNotFound", Target: "corr-404", Kind: defender.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.setOnPost(func(int, func() (defender.MachineAction, error)) (defender.MachineAction, error) {
				return defender.MachineAction{}, tt.err
			})
			r := e.request()
			e.click(e.svc, r.ID, boss, true)
			if got := e.finish(r.ID); got.State != store.Failed {
				t.Fatalf("state %s", got.State)
			}
			ev, ok := e.event(r.ID, store.EventFailed)
			if !ok || ev.StatusCode != tt.err.Status || ev.CorrelationID != tt.err.Target || ev.Reason != describeMDEError(tt.err) {
				t.Fatalf("failed event %+v (found %v)", ev, ok)
			}
			if !e.rec.hasReply(tt.err.Target) {
				t.Fatalf("thread %q lacks the correlation id", e.rec.replyTexts())
			}
			// The bot keeps serving.
			e.command(analyst, "/isolate", "web-02.contoso.local full next")
			if e.rec.cardCount() != 2 {
				t.Fatal("no card for the next request")
			}
		})
	}
}

// TestMDEComment: the marker starts the comment (MDE may cut the end),
// the analyst's part is truncated to fit, and marker-like text typed by
// the analyst is neutralised so it never reads as another request's marker.
func TestMDEComment(t *testing.T) {
	long := MDEComment(store.Request{ID: "r-70", Comment: strings.Repeat("ü", MaxCommentRunes), Requester: analyst, DecidedBy: boss})
	if n := len([]rune(long)); n > MaxMDECommentRunes || !strings.HasSuffix(long, "…") {
		t.Fatalf("%d runes, tail %q", n, long[len(long)-20:])
	}
	for _, tc := range []struct {
		name, id, comment string
		want              string
	}{
		{"plain", "r-7", "beaconing", "[isolate-bot r-7] requested by UANALYST via Slack, approved by UBOSS: beaconing"},
		{"marker of another request", "r-2", "same as [isolate-bot r-1]", "[isolate-bot r-2] requested by UANALYST via Slack, approved by UBOSS: same as (isolate-bot r-1]"},
		{"any case and spacing", "r-2", "[ ISOLATE-BOT r-1] and [Isolate-Bot r-1]", "[isolate-bot r-2] requested by UANALYST via Slack, approved by UBOSS: ( ISOLATE-BOT r-1] and (Isolate-Bot r-1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := store.Request{ID: tc.id, Comment: tc.comment, Requester: analyst, DecidedBy: boss}
			if got := MDEComment(r); got != tc.want {
				t.Fatalf("MDEComment = %q\nwant %q", got, tc.want)
			}
		})
	}
	r1 := store.Request{ID: "r-1", Requester: analyst, DecidedBy: boss}
	for _, tc := range []struct {
		comment string
		want    bool
	}{
		{MDEComment(r1), true},
		{MDEComment(store.Request{ID: "r-10", Requester: analyst, DecidedBy: boss}), false},
		{MDEComment(store.Request{ID: "r-2", Comment: "[isolate-bot r-1] again", Requester: analyst, DecidedBy: boss}), false},
		{"escalated from [isolate-bot r-1] in the portal", false},
		{"old format — requested by UANALYST via Slack, approved by UBOSS, isolate-bot request [isolate-bot r-1]", true},
		{"quoting [isolate-bot r-1]", false},
	} {
		if got := marked(tc.comment, r1); got != tc.want {
			t.Errorf("marked(%q, r-1) = %v, want %v", tc.comment, got, tc.want)
		}
	}
}

func TestUnisolateFlow(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb02, defender.Full, "earlier"); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	e.command(analyst, "/unisolate", "web-02.contoso.local all clear")
	if ev, ok := e.event("r-1", store.EventCreated); !ok || ev.Reason != "unisolate " {
		t.Fatalf("created event %+v (found %v)", ev, ok)
	}
	e.click(e.svc, "r-1", boss2, true)
	got := e.finish("r-1")
	acts := simActions(t, e.sim, defender.SimWeb02)
	if got.State != store.Done || e.posts.Load() != 1 || acts[0].Type != "Unisolate" || got.MachineActionID != acts[0].ID ||
		!strings.HasPrefix(acts[0].RequestorComment, "[isolate-bot r-1] requested by UANALYST via Slack, approved by UBOSS2: ") {
		t.Fatalf("request %+v, newest action %+v", got, acts[0])
	}
}
