package commands

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// TestCommandRefusals: every refusal is an ephemeral to the caller with a
// specific reason, no card, no MDE POST, and an audit "refused" entry.
func TestCommandRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		user  string
		cmd   string
		text  string
		want  string // in the ephemeral
		cands int    // candidate machines listed
	}{
		{name: "syntax", user: analyst, cmd: "/isolate", text: "web-01 sideways x", want: `Unknown isolation type "sideways"`},
		{name: "not allowed", user: stranger, cmd: "/isolate", text: "web-01 full x", want: "not allowed to use this command"},
		{name: "directory down fails closed", user: stranger, cmd: "/isolate", text: "web-01 full x",
			setup: func(e *env) { e.dir.err = errors.New("slack: ratelimited") }, want: "could not check your user-group membership"},
		{name: "channel not allowed", user: analyst, cmd: "/isolate", text: "web-01 full x",
			setup: func(e *env) { e.cfg.AllowedChannels = []string{"COTHER"} }, want: "not allowed in this channel"},
		{name: "unknown id", user: analyst, cmd: "/isolate", text: strings.Repeat("ab", 20) + " full x", want: "no device with id abab"},
		{name: "unknown host", user: analyst, cmd: "/isolate", text: "nope.contoso.local full x", want: "no device named nope.contoso.local"},
		{name: "ambiguous host lists candidates", user: analyst, cmd: "/isolate", text: "kiosk.contoso.local full x", want: "2 devices in MDE match", cands: 2},
		{name: "already isolated", user: analyst, cmd: "/isolate", text: "web-01.contoso.local full x",
			setup: func(e *env) {
				if _, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "earlier"); err != nil {
					e.t.Fatal(err)
				}
				e.clk.Advance(time.Minute) // simulated action succeeds
			}, want: "is already isolated"},
		{name: "MDE action pending", user: analyst, cmd: "/unisolate", text: defender.SimWeb01 + " x",
			setup: func(e *env) {
				if _, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "earlier"); err != nil {
					e.t.Fatal(err)
				}
			}, want: "MDE already has an action in progress for web-01.contoso.local: Isolate (Pending)"},
		{name: "unisolate of a machine not isolated", user: analyst, cmd: "/unisolate", text: defender.SimWeb01 + " x", want: "is not isolated"},
		{name: "already has a request", user: analyst2, cmd: "/isolate", text: "WEB-01.contoso.local selective again",
			setup: func(e *env) { e.request() }, want: "already has request r-1 (pending, by @UANALYST)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(e *env) {
				if tt.setup != nil && strings.Contains(tt.name, "channel") {
					tt.setup(e)
				}
			})
			if tt.setup != nil && !strings.Contains(tt.name, "channel") {
				tt.setup(e)
			}
			cardsBefore := e.msgr.cardCount()
			e.command(tt.user, tt.cmd, tt.text)
			m := e.msgr.lastEphemeral(t, tt.user)
			if got := text(m); !strings.Contains(got, tt.want) {
				t.Fatalf("ephemeral %q; want it to contain %q", got, tt.want)
			}
			if len(m.Machines) != tt.cands {
				t.Fatalf("%d candidates listed, want %d", len(m.Machines), tt.cands)
			}
			if e.msgr.cardCount() != cardsBefore {
				t.Fatal("a card was posted for a refused command")
			}
			if n := e.def.posts.Load(); n != 0 {
				t.Fatalf("%d MDE POSTs for a refused command", n)
			}
			if h := e.history("env-1"); !slices.Contains(h, store.EventRefused) {
				t.Fatalf("audit for the delivery: %v; want a refused event", h)
			}
		})
	}
}

func TestAlreadyRequestThreadLink(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.command(analyst, "/isolate", defender.SimWeb01+" full again")
	m := e.msgr.lastEphemeral(t, analyst)
	i := slices.IndexFunc(m.Spans, func(s Span) bool { return s.Kind == Thread })
	if i < 0 || m.Spans[i].TS != e.get(r.ID).MessageTS || m.Spans[i].Channel != channel {
		t.Fatalf("no thread link to the card in %+v", m.Spans)
	}
}

func TestGroupMemberMayRequestAndCacheIsUsed(t *testing.T) {
	e := newEnv(t)
	e.command(analyst2, "/isolate", "web-01.contoso.local full x")
	e.command(analyst2, "/isolate", "web-02.contoso.local full y")
	if e.msgr.cardCount() != 2 {
		t.Fatalf("%d cards, want 2 (ephemerals %+v)", e.msgr.cardCount(), e.msgr.ephemerals)
	}
	if n := e.dir.calls.Load(); n != 1 {
		t.Fatalf("directory asked %d times, want 1 (cached)", n)
	}
	e.clk.Advance(DefaultGroupCacheTTL + time.Second)
	e.command(analyst2, "/isolate", "status web-01")
	if n := e.dir.calls.Load(); n != 2 {
		t.Fatalf("directory asked %d times after the TTL, want 2", n)
	}
}

func TestRequestPostsCardAndThread(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	if r.ID != "r-1" || r.MessageTS == "" || r.Channel != channel || r.Comment != "suspicious beaconing" ||
		r.IsolationType != "Full" || r.Requester != analyst || !r.ExpiresAt.Equal(e.clk.Now().Add(time.Hour)) {
		t.Fatalf("request %+v", r)
	}
	c := e.msgr.cards[0]
	if c.Request.ID != "r-1" || c.Machine.ID != defender.SimWeb01 || !slices.Equal(c.Approvers, []string{boss, boss2}) {
		t.Fatalf("card %+v", c)
	}
	want := "Request r-1 (isolation of web-01.contoso.local) created by @UANALYST; approvers: @UBOSS, @UBOSS2; expires 10:00 UTC."
	if got := e.msgr.replyTexts(); len(got) != 1 || got[0] != want {
		t.Fatalf("thread %q; want %q", got, want)
	}
	if e.msgr.replies[0].Thread != r.MessageTS {
		t.Fatal("reply not in the card's thread")
	}
	if h := e.history(r.ID); !slices.Equal(h, []string{store.EventCreated}) {
		t.Fatalf("audit %v", h)
	}
}

func TestNotInChannelCancels(t *testing.T) {
	e := newEnv(t)
	e.msgr.postErr = ErrNotInChannel
	e.command(analyst, "/isolate", "web-01.contoso.local full x")
	if got := text(e.msgr.lastEphemeral(t, analyst)); !strings.Contains(got, "/invite @isolate-bot") {
		t.Fatalf("ephemeral %q", got)
	}
	r := e.get("r-1")
	if r.State != store.Cancelled || r.DecidedBy != systemActor || !strings.Contains(r.Note, "not in the channel") {
		t.Fatalf("request %+v", r)
	}
	// The machine is free again.
	e.msgr.postErr = nil
	e.command(analyst, "/isolate", "web-01.contoso.local full x")
	if e.msgr.cardCount() != 1 {
		t.Fatal("second request did not post a card")
	}
}

func TestClickRefusals(t *testing.T) {
	tests := []struct {
		name, user, want string
	}{
		{"requester cannot approve own request", analyst, "two-person rule"},
		{"non-approver", analyst2, "Only approvers can approve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.request()
			e.click(e.svc, r.ID, tt.user, true)
			if got := text(e.msgr.lastEphemeral(t, tt.user)); !strings.Contains(got, tt.want) {
				t.Fatalf("ephemeral %q; want %q", got, tt.want)
			}
			if got := e.get(r.ID); got.State != store.Pending {
				t.Fatalf("state %s", got.State)
			}
			if h := e.history(r.ID); !slices.Contains(h, store.EventClickRefused) {
				t.Fatalf("audit %v", h)
			}
			if e.def.posts.Load() != 0 {
				t.Fatal("MDE was called")
			}
		})
	}
}

// TestApproveIsolatesOnce: approval → exactly one Isolate with the exact
// marker, done with the action id, status followed to Succeeded.
func TestApproveIsolatesOnce(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "done", func() bool { return e.get(r.ID).MachineActionID != "" })
	e.clk.Advance(3 * time.Second) // simulator: Pending for 2 s
	waitFor(t, "status InProgress reported", func() bool { return e.msgr.hasReply("is now InProgress") })
	e.clk.Advance(time.Minute)
	waitFor(t, "status Succeeded reported", func() bool { return e.msgr.hasReply("is now Succeeded") })
	e.svc.Wait()

	if n := e.def.posts.Load(); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
	wantComment := "suspicious beaconing — requested by UANALYST via Slack, approved by UBOSS, isolate-bot request [isolate-bot r-1]"
	if e.def.comments[0] != wantComment {
		t.Fatalf("MDE comment %q\nwant %q", e.def.comments[0], wantComment)
	}
	acts := simActions(t, e.sim, defender.SimWeb01)
	got := e.get(r.ID)
	if len(acts) != 1 || got.MachineActionID != acts[0].ID || got.DecidedBy != boss {
		t.Fatalf("request %+v, actions %+v", got, acts)
	}
	if !e.msgr.hasReply("Approved by @UBOSS") || !e.msgr.hasReply("Sent to MDE: Isolate action "+acts[0].ID) {
		t.Fatalf("thread %q", e.msgr.replyTexts())
	}
	var withAction int
	for _, s := range e.msgr.replies {
		if s.M.Action != nil && s.M.Action.ID == acts[0].ID {
			withAction++
		}
	}
	if withAction < 2 {
		t.Fatalf("%d replies carry the action, want the creation and status changes", withAction)
	}
	h := e.history(r.ID)
	for _, want := range []string{store.EventCreated, store.EventApproved, store.EventMDECall, store.EventDone, store.EventStatus} {
		if !slices.Contains(h, want) {
			t.Fatalf("audit %v lacks %s", h, want)
		}
	}
	if len(e.msgr.updates) == 0 || e.msgr.updates[0].Request.State != store.Approved {
		t.Fatalf("card not updated to approved: %+v", e.msgr.updates)
	}
	// A status query now shows the state and the request thread.
	e.command(analyst, "/isolate", "status r-1")
	st := text(e.msgr.lastEphemeral(t, analyst))
	if !strings.Contains(st, "web-01.contoso.local ("+defender.SimWeb01+"): Isolated") || !strings.Contains(st, "Request r-1 is done") {
		t.Fatalf("status %q", st)
	}
}

func TestDenyCallsNothing(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, false)
	e.svc.Wait()
	got := e.get(r.ID)
	if got.State != store.Denied || got.DecidedBy != boss {
		t.Fatalf("request %+v", got)
	}
	if e.def.posts.Load() != 0 || len(simActions(t, e.sim, defender.SimWeb01)) != 0 {
		t.Fatal("MDE called after a denial")
	}
	if !e.msgr.hasReply("Denied by @UBOSS") || !slices.Contains(e.history(r.ID), store.EventDenied) {
		t.Fatalf("thread %q, audit %v", e.msgr.replyTexts(), e.history(r.ID))
	}
	e.click(e.svc, r.ID, boss2, true)
	if got := text(e.msgr.lastEphemeral(t, boss2)); !strings.Contains(got, "already denied by @UBOSS at 09:00 UTC") {
		t.Fatalf("late click told %q", got)
	}
}

// TestDoubleApprove: two approvers click at once; one decision, one POST,
// the other is told who was first.
func TestDoubleApprove(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	var wg sync.WaitGroup
	for _, u := range []string{boss, boss2} {
		wg.Add(1)
		go func() { defer wg.Done(); e.click(e.svc, r.ID, u, true) }()
	}
	wg.Wait()
	got := e.finish(r.ID)
	if got.State != store.Done || e.def.posts.Load() != 1 {
		t.Fatalf("state %s, %d POSTs", got.State, e.def.posts.Load())
	}
	loser := boss
	if got.DecidedBy == boss {
		loser = boss2
	}
	want := "already approved by @" + got.DecidedBy + " at 09:00 UTC"
	if m := text(e.msgr.lastEphemeral(t, loser)); !strings.Contains(m, want) {
		t.Fatalf("loser told %q; want %q", m, want)
	}
	if n := strings.Count(strings.Join(e.history(r.ID), ","), store.EventApproved); n != 1 {
		t.Fatalf("%d approved events", n)
	}
}

func TestExpiryByTick(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.clk.Advance(59 * time.Minute)
	if err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.get(r.ID).State != store.Pending {
		t.Fatal("expired early")
	}
	e.clk.Advance(time.Minute)
	if err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.get(r.ID)
	if got.State != store.Expired || got.DecidedBy != systemActor {
		t.Fatalf("request %+v", got)
	}
	if !e.msgr.hasReply("Expired without a decision") || !slices.Contains(e.history(r.ID), store.EventExpired) {
		t.Fatalf("thread %q audit %v", e.msgr.replyTexts(), e.history(r.ID))
	}
	if u := e.msgr.updates; len(u) != 1 || u[0].Request.State != store.Expired {
		t.Fatalf("card updates %+v", u)
	}
	e.click(e.svc, r.ID, boss, true)
	if m := text(e.msgr.lastEphemeral(t, boss)); !strings.Contains(m, "expired at 10:00 UTC") {
		t.Fatalf("late click told %q", m)
	}
	if e.def.posts.Load() != 0 {
		t.Fatal("MDE called")
	}
}

func TestCancelCommand(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.command(analyst2, "/isolate", "cancel "+r.ID)
	if m := text(e.msgr.lastEphemeral(t, analyst2)); !strings.Contains(m, "Only the requester (@UANALYST) or an approver") {
		t.Fatalf("told %q", m)
	}
	e.command(analyst, "/isolate", "cancel R-1")
	got := e.get(r.ID)
	if got.State != store.Cancelled || got.DecidedBy != analyst {
		t.Fatalf("request %+v", got)
	}
	if !e.msgr.hasReply("Cancelled by @UANALYST") || !slices.Contains(e.history(r.ID), store.EventCancelled) {
		t.Fatalf("thread %q", e.msgr.replyTexts())
	}
	e.command(analyst, "/isolate", "cancel r-1")
	if m := text(e.msgr.lastEphemeral(t, analyst)); !strings.Contains(m, "was cancelled by @UANALYST") {
		t.Fatalf("told %q", m)
	}
}

// TestThrottledRetries: a 429 is reported in the thread and retried after
// Retry-After; MDE ends up with one action.
func TestThrottledRetries(t *testing.T) {
	e := newEnv(t)
	e.def.onPost = func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
		if n == 1 {
			return defender.MachineAction{}, &defender.APIError{Op: "isolate", Status: 429, Kind: defender.ErrThrottled, RetryAfter: 20 * time.Millisecond}
		}
		return real()
	}
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	got := e.finish(r.ID)
	if got.State != store.Done || e.def.posts.Load() != 2 || len(simActions(t, e.sim, defender.SimWeb01)) != 1 {
		t.Fatalf("state %s, %d POSTs", got.State, e.def.posts.Load())
	}
	if !e.msgr.hasReply("MDE throttled us (HTTP 429); retrying at 09:00:00 UTC") {
		t.Fatalf("thread %q", e.msgr.replyTexts())
	}
}

// TestOutcomeUnknown: the POST reached MDE but the answer was lost;
// reconciliation finds the action by its marker and nothing is re-sent.
// When MDE has no record, the POST is sent once more; twice unknown fails.
func TestOutcomeUnknown(t *testing.T) {
	unknown := &defender.APIError{Op: "isolate", Kind: defender.ErrOutcomeUnknown}
	tests := []struct {
		name      string
		hook      func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error)
		wantState store.State
		posts     int32
		actions   int
		reply     string
	}{
		{"created then lost", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			_, _ = real()
			return defender.MachineAction{}, unknown
		}, store.Done, 1, 1, "Found the MDE Isolate action for this request"},
		{"not received, resent", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			if n == 1 {
				return defender.MachineAction{}, unknown
			}
			return real()
		}, store.Done, 2, 1, "sending it once more"},
		{"twice unknown", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			return defender.MachineAction{}, unknown
		}, store.Failed, 2, 0, "check the MDE portal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.def.onPost = tt.hook
			r := e.request()
			e.click(e.svc, r.ID, boss, true)
			got := e.finish(r.ID)
			if got.State != tt.wantState || e.def.posts.Load() != tt.posts || len(simActions(t, e.sim, defender.SimWeb01)) != tt.actions {
				t.Fatalf("state %s, %d POSTs, %d actions", got.State, e.def.posts.Load(), len(simActions(t, e.sim, defender.SimWeb01)))
			}
			if !e.msgr.hasReply(tt.reply) {
				t.Fatalf("thread %q; want %q", e.msgr.replyTexts(), tt.reply)
			}
		})
	}
}

func TestMDEFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"forbidden", &defender.APIError{Status: 403, Code: "Forbidden", Target: "corr-403", Kind: defender.ErrForbidden},
			"The Azure app lacks the Machine.Isolate application permission (admin consent needed)"},
		{"bad request", &defender.APIError{Status: 400, Code: "InvalidInput", Message: "OS not supported", Target: "corr-400", Kind: defender.ErrBadRequest},
			"rejected the request as invalid"},
		{"unavailable", &defender.APIError{Status: 503, Target: "corr-503", Kind: defender.ErrUnavailable}, "MDE is unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.def.onPost = func(int, func() (defender.MachineAction, error)) (defender.MachineAction, error) {
				return defender.MachineAction{}, tt.err
			}
			r := e.request()
			e.click(e.svc, r.ID, boss, true)
			got := e.finish(r.ID)
			if got.State != store.Failed {
				t.Fatalf("state %s", got.State)
			}
			var apiErr *defender.APIError
			errors.As(tt.err, &apiErr)
			if !e.msgr.hasReply(tt.want) || !e.msgr.hasReply(apiErr.Target) {
				t.Fatalf("thread %q; want %q and the correlation id", e.msgr.replyTexts(), tt.want)
			}
			if !slices.Contains(e.history(r.ID), store.EventFailed) {
				t.Fatal("no failed event")
			}
			// The bot keeps serving.
			e.command(analyst, "/isolate", "web-02.contoso.local full next")
			if e.msgr.cardCount() != 2 {
				t.Fatal("no card for the next request")
			}
		})
	}
}

// TestAlreadyInProgressLinksAction: someone isolated the machine in the
// portal after the request was made; MDE's 400 is explained with the action.
func TestAlreadyInProgressLinksAction(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	portal, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Selective, "from the portal")
	if err != nil {
		t.Fatal(err)
	}
	e.click(e.svc, r.ID, boss, true)
	got := e.finish(r.ID)
	if got.State != store.Failed || !strings.Contains(got.Note, portal.ID) {
		t.Fatalf("request %+v", got)
	}
	found := false
	for _, s := range e.msgr.replies {
		if s.M.Action != nil && s.M.Action.ID == portal.ID && strings.Contains(text(s.M), "already has an action in progress for this machine (Isolate ") {
			found = true
		}
	}
	if !found {
		t.Fatalf("thread %q does not link the pending action", e.msgr.replyTexts())
	}
}

// failingApprovals injects store.ErrUnavailable into chosen methods.
type failingApprovals struct {
	Approvals
	create     bool
	get        bool
	forMachine bool // pretend no open request, so Create's own check answers
}

func (f *failingApprovals) Get(ctx context.Context, id string) (store.Request, error) {
	if f.get {
		return store.Request{}, store.ErrUnavailable
	}
	return f.Approvals.Get(ctx, id)
}

func (f *failingApprovals) ForMachine(ctx context.Context, id string) (store.Request, error) {
	if f.forMachine {
		return store.Request{}, store.ErrNotFound
	}
	return f.Approvals.ForMachine(ctx, id)
}

func (f *failingApprovals) Create(ctx context.Context, r store.Request) (store.Request, error) {
	if f.create {
		return store.Request{}, errors.Join(store.ErrUnavailable, errors.New("dial tcp 127.0.0.1:6379: connection refused"))
	}
	return f.Approvals.Create(ctx, r)
}

func TestStoreUnavailableNothingRequested(t *testing.T) {
	e := newEnv(t, func(e *env) { e.store = &failingApprovals{Approvals: e.mem, create: true} })
	e.command(analyst, "/isolate", "web-01.contoso.local full x")
	if m := text(e.msgr.lastEphemeral(t, analyst)); m != "The state store is unavailable, nothing was requested; try again shortly." {
		t.Fatalf("told %q", m)
	}
	if e.msgr.cardCount() != 0 || e.def.posts.Load() != 0 {
		t.Fatal("card or MDE call despite the store being down")
	}
}

func TestMDECommentBounded(t *testing.T) {
	r := store.Request{ID: "r-70", Comment: strings.Repeat("ü", MaxCommentRunes), Requester: analyst, DecidedBy: boss}
	c := MDEComment(r)
	if n := len([]rune(c)); n > MaxMDECommentRunes {
		t.Fatalf("%d runes", n)
	}
	if !strings.HasSuffix(c, "[isolate-bot r-70]") || !strings.Contains(c, "…") {
		t.Fatalf("comment tail %q", c[len(c)-120:])
	}
	if strings.Contains(MDEComment(store.Request{ID: "r-7", Comment: "x"}), Marker("r-70")) ||
		strings.Contains(c, Marker("r-7")) {
		t.Fatal("markers of r-7 and r-70 overlap")
	}
}

func TestDeriveState(t *testing.T) {
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	act := func(typ, status string, ago time.Duration) defender.MachineAction {
		return defender.MachineAction{ID: typ + status, Type: typ, Status: status, CreationDateTimeUTC: now.Add(-ago)}
	}
	tests := []struct {
		name string
		acts []defender.MachineAction
		want string
	}{
		{"none", nil, StateNotIsolated},
		{"isolated", []defender.MachineAction{act("Isolate", "Succeeded", time.Hour)}, StateIsolated},
		{"pending isolate", []defender.MachineAction{act("Isolate", "Succeeded", 2*time.Hour), act("Isolate", "Pending", time.Minute)}, StateIsolationPend},
		{"pending release", []defender.MachineAction{act("Unisolate", "InProgress", time.Minute), act("Isolate", "Succeeded", time.Hour)}, StateReleasePending},
		{"released", []defender.MachineAction{act("Isolate", "Succeeded", 2*time.Hour), act("Unisolate", "Succeeded", time.Hour)}, StateNotIsolated},
		{"failed release keeps isolation", []defender.MachineAction{act("Unisolate", "Failed", time.Minute), act("Isolate", "Succeeded", time.Hour)}, StateIsolated},
		{"older than auto-release", []defender.MachineAction{act("Isolate", "Succeeded", 8*24*time.Hour)}, StateUnknown},
		{"other actions ignored", []defender.MachineAction{act("RunAntiVirusScan", "Pending", 0)}, StateNotIsolated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deriveState(tt.acts, now).State; got != tt.want {
				t.Fatalf("state %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCreateRaceAnsweredByStore(t *testing.T) {
	e := newEnv(t, func(e *env) { e.store = &failingApprovals{Approvals: e.mem, forMachine: true} })
	e.command(analyst, "/isolate", "web-01.contoso.local full first")
	e.command(analyst2, "/isolate", "web-01.contoso.local full again")
	if m := text(e.msgr.lastEphemeral(t, analyst2)); !strings.Contains(m, "already has request r-1 (pending, by @UANALYST)") {
		t.Fatalf("told %q", m)
	}
	if e.msgr.cardCount() != 1 {
		t.Fatal("second card posted")
	}
}

func TestClickStoreDown(t *testing.T) {
	fa := &failingApprovals{}
	e := newEnv(t, func(e *env) { fa.Approvals = e.mem; e.store = fa })
	r := e.request()
	fa.get = true
	e.click(e.svc, r.ID, boss, true)
	if m := text(e.msgr.lastEphemeral(t, boss)); !strings.Contains(m, "state store is unavailable, nothing was decided") {
		t.Fatalf("told %q", m)
	}
	if e.def.posts.Load() != 0 {
		t.Fatal("MDE called")
	}
}

func TestHelpAndStatus(t *testing.T) {
	e := newEnv(t)
	e.command(stranger, "/isolate", "")
	if m := text(e.msgr.lastEphemeral(t, stranger)); !strings.Contains(m, UsageIsolate) || !strings.Contains(m, UsageCancel) {
		t.Fatalf("help %q", m)
	}
	e.command(stranger, "/isolate", "status web-01.contoso.local")
	if m := text(e.msgr.lastEphemeral(t, stranger)); !strings.Contains(m, "not allowed") {
		t.Fatalf("status for a stranger: %q", m)
	}
	e.command(boss, "/isolate", "status web-01.contoso.local")
	if m := text(e.msgr.lastEphemeral(t, boss)); !strings.Contains(m, "): Not isolated (no isolation on record). No isolation actions on record.") {
		t.Fatalf("status %q", m)
	}
	e.request()
	e.command(boss, "/isolate", "status r-1")
	m := e.msgr.lastEphemeral(t, boss)
	if !strings.Contains(text(m), "Request r-1 is pending — <thread ") {
		t.Fatalf("status %q", text(m))
	}
}

// TestStopWhileQueued: shutting down while queued sends nothing, frees the
// slot and leaves the request executing for a scheduler to resume.
func TestStopWhileQueued(t *testing.T) {
	var lim *ratelimit.Memory
	e := newEnv(t, func(e *env) {
		lim = oneAMinute(e.clk.Now, time.Minute)
		e.gate = newGate(lim, DefaultQueueMaxWait, e.clk.Now)
	})
	e.command(analyst, "/isolate", "web-01.contoso.local full first")
	e.command(analyst, "/isolate", "web-02.contoso.local full second")
	e.click(e.svc, "r-1", boss, true)
	waitFor(t, "r-1 done", func() bool { return e.get("r-1").MachineActionID != "" })
	e.click(e.svc, "r-2", boss, true)
	waitFor(t, "r-2 queued", func() bool { return !e.get("r-2").RunAt.IsZero() })
	e.svc.Stop()
	e.svc.Wait()
	r2 := e.get("r-2")
	if r2.State != store.Executing || !r2.CheckAt.Equal(r2.RunAt.Add(2*e.cfg.CallTimeout)) {
		t.Fatalf("request %+v", r2)
	}
	if n, _ := lim.QueueDepth(context.Background(), defender.BudgetIsolate); n != 0 {
		t.Fatalf("%d slots still reserved", n)
	}
	if len(simActions(t, e.sim, defender.SimWeb02)) != 0 || e.msgr.hasReply("will retry") {
		t.Fatalf("thread %q", e.msgr.replyTexts())
	}
	// Another replica resumes it once its CheckAt has passed.
	next := e.newService()
	e.clk.Advance(2 * time.Minute)
	if err := next.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "r-2 done", func() bool { return e.get("r-2").MachineActionID != "" })
	e.clk.Advance(time.Minute)
	next.Wait()
	if len(simActions(t, e.sim, defender.SimWeb02)) != 1 {
		t.Fatal("not exactly one action after the resume")
	}
}

func TestLookupFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"forbidden", &defender.APIError{Status: 403, Kind: defender.ErrForbidden}, "lacks the Machine.Read.All application permission"},
		{"unavailable", &defender.APIError{Status: 503, Kind: defender.ErrUnavailable}, "MDE is unavailable right now (HTTP 503)"},
		{"unexpected", errors.New("secret-ish internal detail"), "failed unexpectedly (details in the bot's logs)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.def.lookErr = tt.err
			e.command(analyst, "/isolate", "web-01 full x")
			m := text(e.msgr.lastEphemeral(t, analyst))
			if !strings.Contains(m, tt.want) || strings.Contains(m, "secret-ish") {
				t.Fatalf("told %q; want %q", m, tt.want)
			}
		})
	}
}

func TestUnisolateFlow(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb02, defender.Full, "earlier"); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	e.command(analyst, "/unisolate", "web-02.contoso.local all clear")
	if !e.msgr.hasReply("Request r-1 (release from isolation of web-02.contoso.local) created") {
		t.Fatalf("thread %q", e.msgr.replyTexts())
	}
	e.click(e.svc, "r-1", boss2, true)
	got := e.finish("r-1")
	acts := simActions(t, e.sim, defender.SimWeb02)
	if got.State != store.Done || e.def.posts.Load() != 1 || acts[0].Type != "Unisolate" || got.MachineActionID != acts[0].ID ||
		!strings.HasSuffix(acts[0].RequestorComment, "approved by UBOSS2, isolate-bot request [isolate-bot r-1]") {
		t.Fatalf("request %+v, newest action %+v", got, acts[0])
	}
}

func TestRunSchedulerExpiresAndStops(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.clk.Advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.RunScheduler(ctx) }()
	waitFor(t, "expired", func() bool { return e.get(r.ID).State == store.Expired })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunScheduler: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunScheduler did not return after cancel")
	}
	if e.svc.bg.Err() == nil {
		t.Fatal("background work not stopped with the scheduler")
	}
}

// An approver on another replica can click the card before the requester's
// replica has recorded the card's ts. The thread must survive: every reply
// lands under the card, and the request is neither withdrawn nor orphaned.
func TestClickBeforeCardRecorded(t *testing.T) {
	e := newEnv(t)
	other := e.newService()
	e.msgr.afterPost = func(ts string, c Card) {
		if err := other.Click(context.Background(), Click{RequestID: c.Request.ID, User: boss, Channel: channel, MessageTS: ts, Approve: true}); err != nil {
			t.Errorf("click: %v", err)
		}
	}
	e.command(analyst, "/isolate", "web-01.contoso.local full suspicious beaconing")
	r, err := e.store.ForMachine(context.Background(), defender.SimWeb01)
	if err != nil {
		t.Fatal(err)
	}
	r = e.finish(r.ID)
	if r.State != store.Done || r.MessageTS != "1764406800.000001" {
		t.Fatalf("request ended %s with card ts %q; want done under the card", r.State, r.MessageTS)
	}
	e.msgr.mu.Lock()
	replies := append([]sent(nil), e.msgr.replies...)
	e.msgr.mu.Unlock()
	for _, rep := range replies {
		if rep.Thread != r.MessageTS {
			t.Errorf("reply %q went to thread %q, not the card %q", text(rep.M), rep.Thread, r.MessageTS)
		}
	}
	if len(replies) < 3 {
		t.Errorf("only %d thread replies: %q", len(replies), e.msgr.replyTexts())
	}
}

// A click after APPROVAL_TTL, before any tick, expires the request in the
// store; the expiry must still reach the card, the thread and the audit log
// exactly once (the scheduler no longer sees the request).
func TestExpiryByLateClick(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.clk.Advance(61 * time.Minute)
	e.click(e.svc, r.ID, boss, true)
	if m := text(e.msgr.lastEphemeral(t, boss)); !strings.Contains(m, "expired") {
		t.Fatalf("late click told %q", m)
	}
	if err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.get(r.ID); got.State != store.Expired {
		t.Fatalf("request is %s, want expired", got.State)
	}
	n := 0
	for _, s := range e.msgr.replyTexts() {
		if strings.Contains(s, "Expired without a decision") {
			n++
		}
	}
	if n != 1 || !slices.Contains(e.history(r.ID), store.EventExpired) {
		t.Fatalf("%d expiry replies in %q; audit %v", n, e.msgr.replyTexts(), e.history(r.ID))
	}
	if u := e.msgr.updates; len(u) != 1 || u[0].Request.State != store.Expired {
		t.Fatalf("card updates %+v", u)
	}
	if e.def.posts.Load() != 0 {
		t.Fatal("MDE called")
	}
}

// Shutting down while an MDE action is still being followed says so in the
// thread, so the audit trail does not just fall silent.
func TestStopWhileFollowing(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the MDE action to be sent", func() bool { return e.get(r.ID).MachineActionID != "" })
	e.svc.Stop() // the simulated clock stands still: the action stays Pending
	e.svc.Wait()
	if !e.msgr.hasReply("The bot is shutting down while following action") {
		t.Fatalf("thread %q", e.msgr.replyTexts())
	}
}

// A replica that stops while following an MDE action hands the following
// over: once its lease has run out, another replica's scheduler picks the
// request up by its recorded action id, reports the remaining status
// changes, and ends the request, without a second POST.
func TestFollowingSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the MDE action to be sent", func() bool { return e.get(r.ID).MachineActionID != "" })
	e.svc.Stop()
	e.svc.Wait()
	if got := e.get(r.ID); got.State != store.Executing {
		t.Fatalf("after the shutdown the request is %s, want executing (still followed)", got.State)
	}

	next := e.newService()
	e.clk.Advance(time.Minute) // past the lease; the simulated action has succeeded
	if err := next.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request to end", func() bool { return e.get(r.ID).State.Terminal() })
	next.Wait()
	got := e.get(r.ID)
	if got.State != store.Done || e.def.posts.Load() != 1 {
		t.Fatalf("request %s after %d POSTs; want done after exactly 1", got.State, e.def.posts.Load())
	}
	// The action finished while nobody followed it: the resumed follower
	// reports where it stands.
	if !e.msgr.hasReply("again after a restart; it is Succeeded") {
		t.Errorf("thread %q", e.msgr.replyTexts())
	}
	if h := e.history(r.ID); h[len(h)-1] != store.EventDone {
		t.Errorf("audit %v, want it to end with done", h)
	}
}
