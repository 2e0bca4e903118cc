package commands

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/mock"
	"github.com/soc/isolate-bot/store"
)

// refusalCase is a command that must be refused, and the check that refuses it.
type refusalCase struct {
	name   string
	mod    func(e *env) // before the Service is made
	setup  func(e *env)
	user   string
	cmd    string
	text   string
	reason string // prefix of the audit event's reason
	cands  int    // candidate machines listed
}

func refusalCases() []refusalCase {
	isolated := func(e *env) {
		if _, err := e.sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "earlier"); err != nil {
			e.t.Fatal(err)
		}
	}
	return []refusalCase{
		{name: "syntax", user: analyst, cmd: "/isolate", text: "web-01 sideways x", reason: "syntax: "},
		{name: "not allowed", user: stranger, cmd: "/isolate", text: "web-01 full x", reason: "user not allowed"},
		{name: "directory down fails closed", user: stranger, cmd: "/isolate", text: "web-01 full x", reason: "membership check failed",
			setup: func(e *env) {
				e.dir.GroupMembersFn = func(context.Context, string) ([]string, error) { return nil, errors.New("slack: ratelimited") }
			}},
		{name: "channel not allowed", user: analyst, cmd: "/isolate", text: "web-01 full x", reason: "channel not allowed",
			mod: func(e *env) { e.cfg.AllowedChannels = []string{"COTHER"} }},
		{name: "unknown id", user: analyst, cmd: "/isolate", text: strings.Repeat("ab", 20) + " full x", reason: "unknown machine id"},
		{name: "unknown host", user: analyst, cmd: "/isolate", text: "nope.contoso.local full x", reason: "unknown host name nope.contoso.local"},
		{name: "ambiguous host lists candidates", user: analyst, cmd: "/isolate", text: "kiosk.contoso.local full x", reason: "ambiguous host name", cands: 2},
		{name: "already isolated", user: analyst, cmd: "/isolate", text: "web-01.contoso.local full x", reason: "already isolated",
			setup: func(e *env) { isolated(e); e.clk.Advance(time.Minute) }}, // the simulated action succeeds
		{name: "MDE action pending", user: analyst, cmd: "/unisolate", text: defender.SimWeb01 + " x", reason: "MDE action ", setup: isolated},
		{name: "unisolate after a release", user: analyst, cmd: "/unisolate", text: defender.SimWeb01 + " x", reason: "already released",
			setup: func(e *env) {
				isolated(e)
				e.clk.Advance(time.Minute)
				if _, err := e.sim.Unisolate(context.Background(), nil, defender.SimWeb01, "released in the portal"); err != nil {
					e.t.Fatal(err)
				}
				e.clk.Advance(time.Minute)
			}},
		// Types the machine cannot take: refused before any card.
		{name: "selective on Linux", user: analyst, cmd: "/isolate", text: "web-02.contoso.local selective x", reason: "isolation type Selective not supported"},
		{name: "full on an unmanaged device", user: analyst, cmd: "/isolate", text: "printer-3f.contoso.local full x", reason: "isolation type Full not supported"},
		{name: "unmanaged on an onboarded device", user: analyst, cmd: "/isolate", text: "web-01.contoso.local unmanaged x", reason: "isolation type UnManagedDevice not supported"},
		{name: "already has a request", user: analyst2, cmd: "/isolate", text: "WEB-01.contoso.local selective again", reason: "open request r-1",
			setup: func(e *env) { e.request() }},
	}
}

// TestCommandRefusals: every refusal is an ephemeral to the caller, no
// card, no MDE POST, and an audit "refused" entry in the global stream only
// (no stream of its own: a flood must not create keys kept for
// AUDIT_RETENTION) whose reason names the check that refused.
func TestCommandRefusals(t *testing.T) {
	for _, tt := range refusalCases() {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*env)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			e := newEnv(t, mods...)
			if tt.setup != nil {
				tt.setup(e)
			}
			cardsBefore := e.rec.cardCount()
			e.command(tt.user, tt.cmd, tt.text)
			ev, ok := e.lastRefusal()
			if !ok || !strings.HasPrefix(ev.Reason, tt.reason) || ev.Actor != tt.user || ev.RequestID != "" {
				t.Fatalf("refused event %+v (found %v); want reason %q by %s, no request", ev, ok, tt.reason, tt.user)
			}
			if h := e.events("env-1"); len(h) != 0 {
				t.Fatalf("the delivery has an audit stream of its own: %+v", h)
			}
			if m := e.rec.lastEphemeral(t, tt.user); len(m.Spans) == 0 || len(m.Machines) != tt.cands {
				t.Fatalf("ephemeral %q lists %d candidates, want %d", text(m), len(m.Machines), tt.cands)
			}
			if e.rec.cardCount() != cardsBefore {
				t.Fatal("a card was posted for a refused command")
			}
			if n := e.posts.Load(); n != 0 {
				t.Fatalf("%d MDE POSTs for a refused command", n)
			}
		})
	}
}

func TestAlreadyRequestThreadLink(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.command(analyst, "/isolate", defender.SimWeb01+" full again")
	m := e.rec.lastEphemeral(t, analyst)
	i := slices.IndexFunc(m.Spans, func(s Span) bool { return s.Kind == Thread })
	if i < 0 || m.Spans[i].TS != e.get(r.ID).MessageTS || m.Spans[i].Channel != channel {
		t.Fatalf("no thread link to the card in %+v", m.Spans)
	}
}

func TestGroupMemberMayRequestAndCacheIsUsed(t *testing.T) {
	e := newEnv(t)
	e.command(analyst2, "/isolate", "web-01.contoso.local full x")
	e.command(analyst2, "/isolate", "web-02.contoso.local full y")
	if e.rec.cardCount() != 2 {
		t.Fatalf("%d cards, want 2 (ephemerals %+v)", e.rec.cardCount(), e.rec.ephemerals)
	}
	if n := e.dirCalls.Load(); n != 1 {
		t.Fatalf("directory asked %d times, want 1 (cached)", n)
	}
	e.clk.Advance(e.svc.cfg.GroupCacheTTL + time.Second)
	e.command(analyst2, "/isolate", "status web-01")
	if n := e.dirCalls.Load(); n != 2 {
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
	c := e.rec.cards[0]
	if c.Request.ID != "r-1" || c.Machine.ID != defender.SimWeb01 || !slices.Equal(c.Approvers, []string{boss, boss2}) {
		t.Fatalf("card %+v", c)
	}
	// The one message whose exact words this package pins: the thread's
	// opening line, which people read first.
	want := "Request r-1 (isolation of web-01.contoso.local) created by @UANALYST; approvers: @UBOSS, @UBOSS2; expires 10:00 UTC."
	if got := e.rec.replyTexts(); len(got) != 1 || got[0] != want {
		t.Fatalf("thread %q; want %q", got, want)
	}
	if e.rec.replies[0].Thread != r.MessageTS {
		t.Fatal("reply not in the card's thread")
	}
	if h := e.history(r.ID); !slices.Equal(h, []string{store.EventCreated}) {
		t.Fatalf("audit %v", h)
	}
}

func TestNotInChannelCancels(t *testing.T) {
	e := newEnv(t)
	post := e.msgr.PostCardFn
	e.msgr.PostCardFn = func(context.Context, string, Card) (string, error) { return "", ErrNotInChannel }
	e.command(analyst, "/isolate", "web-01.contoso.local full x")
	if got := text(e.rec.lastEphemeral(t, analyst)); !strings.Contains(got, "/invite @isolate-bot") {
		t.Fatalf("ephemeral %q; want the command that fixes it", got)
	}
	r := e.get("r-1")
	if r.State != store.Cancelled || r.DecidedBy != systemActor || !strings.Contains(r.Note, "not in the channel") {
		t.Fatalf("request %+v", r)
	}
	if ev, ok := e.event(r.ID, store.EventCancelled); !ok || ev.Actor != systemActor {
		t.Fatalf("cancelled event %+v (found %v)", ev, ok)
	}
	// The machine is free again.
	e.msgr.PostCardFn = post
	e.command(analyst, "/isolate", "web-01.contoso.local full x")
	if e.rec.cardCount() != 1 || e.get("r-2").State != store.Pending {
		t.Fatal("second request did not post a card")
	}
}

// failingStore injects store.ErrUnavailable on top of the memory store.
func failingStore(e *env) *mock.Approvals {
	fa := mock.ApprovalsOver(e.mem)
	e.store = fa
	return fa
}

func TestStoreUnavailableNothingRequested(t *testing.T) {
	e := newEnv(t, func(e *env) {
		failingStore(e).CreateFn = func(context.Context, store.Request) (store.Request, error) {
			return store.Request{}, errors.Join(store.ErrUnavailable, errors.New("dial tcp 127.0.0.1:6379: connection refused"))
		}
	})
	e.command(analyst, "/isolate", "web-01.contoso.local full x")
	if ev, ok := e.lastRefusal(); !ok || !strings.HasPrefix(ev.Reason, "state store: ") {
		t.Fatalf("refused event %+v (found %v)", ev, ok)
	}
	if m := text(e.rec.lastEphemeral(t, analyst)); m != text(storeDownMessage) {
		t.Fatalf("told %q", m)
	}
	if e.rec.cardCount() != 0 || e.posts.Load() != 0 {
		t.Fatal("card or MDE call despite the store being down")
	}
}

// Two requests race past the open-request check: the store's Create
// answers the second.
func TestCreateRaceAnsweredByStore(t *testing.T) {
	e := newEnv(t, func(e *env) {
		failingStore(e).ForMachineFn = func(context.Context, string) (store.Request, error) { return store.Request{}, store.ErrNotFound }
	})
	e.command(analyst, "/isolate", "web-01.contoso.local full first")
	e.command(analyst2, "/isolate", "web-01.contoso.local full again")
	if ev, ok := e.lastRefusal(); !ok || ev.Reason != "open request r-1" || ev.Actor != analyst2 {
		t.Fatalf("refused event %+v (found %v)", ev, ok)
	}
	if e.rec.cardCount() != 1 {
		t.Fatal("second card posted")
	}
}

func TestLookupFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"forbidden", &defender.APIError{Status: 403, Kind: defender.ErrForbidden}, "Machine.Read.All"},
		{"unavailable", &defender.APIError{Status: 503, Kind: defender.ErrUnavailable}, "(HTTP 503)"},
		{"unexpected", errors.New("secret-ish internal detail"), "details in the bot's logs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.def.FindMachinesByNameFn = func(context.Context, string) ([]defender.Machine, error) { return nil, tt.err }
			e.command(analyst, "/isolate", "web-01 full x")
			if ev, ok := e.lastRefusal(); !ok || !strings.HasPrefix(ev.Reason, "machine lookup failed") {
				t.Fatalf("refused event %+v (found %v)", ev, ok)
			}
			// What the analyst can act on (the permission, the status) is
			// shown; what is not from MDE's vocabulary stays in the logs.
			m := text(e.rec.lastEphemeral(t, analyst))
			if !strings.Contains(m, tt.want) || strings.Contains(m, "secret-ish") {
				t.Fatalf("told %q; want %q", m, tt.want)
			}
		})
	}
}

// TestBulkDisabledRefused: without BULK_MAX (a Service configured with no
// bulk limit or drainer) a list or tag is refused plainly (fail closed),
// with no MDE look-up and no request.
func TestBulkDisabledRefused(t *testing.T) {
	for _, text := range []string{"web-01.contoso.local, web-02.contoso.local full outbreak", "tag:Tier0 full outbreak"} {
		e := newEnv(t)
		lookups := 0
		e.def.FindMachinesByNameFn = func(context.Context, string) ([]defender.Machine, error) { lookups++; return nil, nil }
		e.command(analyst, "/isolate", text)
		if ev, ok := e.lastRefusal(); !ok || ev.Reason != "bulk not enabled" {
			t.Errorf("%q: last refusal %+v (found %v), want bulk not enabled", text, ev, ok)
		}
		if lookups != 0 || e.rec.cardCount() != 0 {
			t.Errorf("%q: %d look-ups, %d cards; want none", text, lookups, e.rec.cardCount())
		}
	}
}
