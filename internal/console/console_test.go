package console

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/syncbuf"
	"github.com/soc/isolate-bot/store"
)

// fakeService records what the console sends, by function fields.
type fakeService struct {
	mu      sync.Mutex
	invs    []commands.Invocation
	clicks  []commands.Click
	onCmd   func(commands.Invocation) error
	onClick func(commands.Click) error
}

func (f *fakeService) Command(_ context.Context, inv commands.Invocation) error {
	f.mu.Lock()
	f.invs = append(f.invs, inv)
	f.mu.Unlock()
	if f.onCmd != nil {
		return f.onCmd(inv)
	}
	return nil
}

func (f *fakeService) Click(_ context.Context, c commands.Click) error {
	f.mu.Lock()
	f.clicks = append(f.clicks, c)
	f.mu.Unlock()
	if f.onClick != nil {
		return f.onClick(c)
	}
	return nil
}

var users = []Identity{{ID: "U0ANALYST", Name: "alice", Role: "analyst"}, {ID: "U0MANAGER", Name: "bob", Role: "manager"}}

func pendingCard() commands.Card {
	return commands.Card{
		Request: store.Request{
			ID: "r-7", Command: store.Isolate, MachineID: defender.SimWeb01, HostName: "web-01.contoso.local",
			IsolationType: "Full", Comment: "beaconing\nsecond line", Requester: "U0ANALYST", State: store.Pending,
			ExpiresAt: time.Date(2026, 1, 2, 4, 5, 6, 0, time.UTC),
		},
		Machine:   defender.Machine{ID: defender.SimWeb01, OSPlatform: "Windows11", HealthStatus: "Active", RiskScore: "High", ExposureLevel: "Low"},
		Approvers: []string{"U0MANAGER", "S0SOCMGRS"},
	}
}

func TestCard(t *testing.T) {
	var out bytes.Buffer
	c := New(&out, "C1", users)
	ts, err := c.PostCard(context.Background(), "C1", pendingCard())
	if err != nil || ts == "" {
		t.Fatalf("PostCard: %q %v", ts, err)
	}
	decided := pendingCard()
	decided.Request.State, decided.Request.DecidedBy = store.Approved, "U0MANAGER"
	decided.Request.DecidedAt = time.Date(2026, 1, 2, 3, 30, 0, 0, time.UTC)
	if err := c.UpdateCard(context.Background(), "C1", ts, decided); err != nil {
		t.Fatal(err)
	}
	want := `┌ r-7: isolate (Full) web-01.contoso.local, requested by @alice
│ machine 23f2a6f58cae27fcb36fce2b9d699bf2bccb5e5f · Windows11 · health Active · risk High · exposure Low
│ comment: beaconing
│   second line
│ approvers: @bob, @S0SOCMGRS
│ expires 04:05:06 UTC
└ [approve r-7] [deny r-7]
┌ (updated) r-7: isolate (Full) web-01.contoso.local, requested by @alice
│ machine 23f2a6f58cae27fcb36fce2b9d699bf2bccb5e5f · Windows11 · health Active · risk High · exposure Low
│ comment: beaconing
│   second line
│ approvers: @bob, @S0SOCMGRS
└ approved by @bob at 03:30:00 UTC
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestMessages(t *testing.T) {
	var out bytes.Buffer
	c := New(&out, "C1", users)
	ctx := context.Background()
	ts, _ := c.PostCard(ctx, "C1", pendingCard())
	out.Reset()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"reply with action", func() error {
			return c.Reply(ctx, "C1", ts, commands.Message{
				Spans:  []commands.Span{{Text: "Sent to MDE: "}, {Kind: commands.Code, Text: "a-1"}, {Text: " by "}, {Kind: commands.User, Text: "U0MANAGER"}},
				Action: &defender.MachineAction{ID: "a-1", Type: "Isolate", Scope: "Full", ComputerDNSName: "web-01", Status: "Pending", CreationDateTimeUTC: created},
			})
		}, "  └ r-7 Sent to MDE: `a-1` by @bob\n      MachineAction a-1 Isolate Full on web-01: Pending (created 03:04:05 UTC)\n"},
		{"ephemeral to the current user", func() error {
			return c.Ephemeral(ctx, "C1", "U0ANALYST", commands.Message{Spans: []commands.Span{{Kind: commands.Bold, Text: "Denied"}, {Text: " — see "}, {Kind: commands.Thread, Text: "its thread", Channel: "C1", TS: ts}}})
		}, "(only you) *Denied* — see its thread (r-7)\n"},
		{"ephemeral to someone else", func() error {
			return c.Ephemeral(ctx, "C1", "U0MANAGER", commands.Message{Spans: []commands.Span{{Text: "hi"}}})
		}, "(only @bob) hi\n"},
		{"candidate machines", func() error {
			return c.Ephemeral(ctx, "C1", "U0ANALYST", commands.Message{
				Spans:    []commands.Span{{Text: "Which one?"}},
				Machines: []defender.Machine{{ID: defender.SimKioskA, ComputerDNSName: "kiosk.contoso.local", OSPlatform: "Windows10"}},
			})
		}, "(only you) Which one?\n    • kiosk.contoso.local  " + defender.SimKioskA + "  Windows10\n"},
		{"a list, one line each", func() error {
			return c.Reply(ctx, "C1", ts, commands.Message{Spans: []commands.Span{{Text: "Batch b-1 finished"}},
				List: []string{"isolated (2): web-01, web-02", "skipped: no machine has this name (1): \x1b[2Jweb-99"}})
		}, "  └ r-7 Batch b-1 finished\n      isolated (2): web-01, web-02\n      skipped: no machine has this name (1): \ufffd[2Jweb-99\n"},
		{"unknown thread", func() error {
			return c.Reply(ctx, "C1", "999.1", commands.Message{Spans: []commands.Span{{Text: "x"}}})
		}, "  └ thread 999.1 x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out.Reset()
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got  %q\nwant %q", out.String(), tt.want)
			}
		})
	}
	if _, err := c.GroupMembers(ctx, "S0X"); err == nil {
		t.Error("GroupMembers should fail: the console has no groups")
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain <b>&", "plain <b>&"},
		{"\x1b[31mred", "\uFFFD[31mred"},
		{"bell\a del\x7f c1\u009b", "bell\uFFFD del\uFFFD c1\uFFFD"},
		{"rtl\u202Eevil", "rtl\uFFFDevil"},
		{"keep\ttab\nnewline", "keep\ttab\nnewline"},
	}
	for _, tt := range tests {
		if got := clean(tt.in); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRunDispatch: each console line becomes the right Invocation or
// Click, as the current user, with a card's ts on clicks.
func TestRunDispatch(t *testing.T) {
	var out bytes.Buffer
	c := New(&out, "C0SOC", users)
	ts, _ := c.PostCard(context.Background(), "C0SOC", pendingCard())
	svc := &fakeService{onCmd: func(inv commands.Invocation) error {
		if inv.Text == "boom" {
			return fmt.Errorf("service failed")
		}
		return nil
	}}
	script := "# a comment\n\n/isolate web-01 full x\nisolate web-02 selective y\nstatus r-7\ncancel r-7\nas bob\n/unisolate web-01 done\nAPPROVE R-7\ndeny r-8\n/isolate boom\n"
	quit, err := c.Run(context.Background(), strings.NewReader(script), svc, false)
	if err != nil || quit {
		t.Fatalf("Run: quit=%v err=%v", quit, err)
	}
	wantInv := []commands.Invocation{
		{Command: "/isolate", Text: "web-01 full x", User: "U0ANALYST"},
		{Command: "/isolate", Text: "web-02 selective y", User: "U0ANALYST"},
		{Command: "/isolate", Text: "status r-7", User: "U0ANALYST"},
		{Command: "/isolate", Text: "cancel r-7", User: "U0ANALYST"},
		{Command: "/unisolate", Text: "web-01 done", User: "U0MANAGER"},
		{Command: "/isolate", Text: "boom", User: "U0MANAGER"},
	}
	if len(svc.invs) != len(wantInv) {
		t.Fatalf("got %d invocations: %+v", len(svc.invs), svc.invs)
	}
	ids := map[string]bool{}
	for i, w := range wantInv {
		g := svc.invs[i]
		if g.Command != w.Command || g.Text != w.Text || g.User != w.User || g.Channel != "C0SOC" {
			t.Errorf("invocation %d = %+v, want %+v", i, g, w)
		}
		if g.TriggerID == "" || ids[g.TriggerID] {
			t.Errorf("invocation %d: trigger id %q not unique", i, g.TriggerID)
		}
		ids[g.TriggerID] = true
	}
	wantClicks := []commands.Click{
		{RequestID: "r-7", User: "U0MANAGER", Channel: "C0SOC", MessageTS: ts, Action: commands.ButtonApprove},
		{RequestID: "r-8", User: "U0MANAGER", Channel: "C0SOC", MessageTS: "", Action: commands.ButtonDeny},
	}
	if len(svc.clicks) != len(wantClicks) {
		t.Fatalf("got clicks %+v", svc.clicks)
	}
	for i, w := range wantClicks {
		g := svc.clicks[i]
		g.TriggerID = ""
		if g != w {
			t.Errorf("click %d = %+v, want %+v", i, g, w)
		}
	}
	if !strings.Contains(out.String(), "(error) service failed") {
		t.Error("a service error is not shown")
	}
	if !strings.Contains(out.String(), "alice> /isolate web-01 full x\n") || !strings.Contains(out.String(), "bob> APPROVE R-7\n") {
		t.Errorf("piped input is not echoed with the user's prompt:\n%s", out.String())
	}
}

func TestRunPromptAndQuit(t *testing.T) {
	var out bytes.Buffer
	c := New(&out, "C1", users)
	quit, err := c.Run(context.Background(), strings.NewReader("help\nquit\n/isolate never\n"), &fakeService{onCmd: func(commands.Invocation) error {
		t.Error("a line after quit was run")
		return nil
	}}, true)
	if err != nil || !quit {
		t.Fatalf("quit=%v err=%v", quit, err)
	}
	if !strings.HasPrefix(out.String(), "alice> Commands (you act as the current user)") {
		t.Errorf("no prompt before help:\n%s", out.String())
	}
	if strings.Contains(out.String(), "alice> help") {
		t.Error("a terminal's input should not be echoed")
	}
}

func TestRunStopsWithContext(t *testing.T) {
	c := New(&bytes.Buffer{}, "C1", users)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A reader that never returns: Run must still end when ctx does.
	quit, err := c.Run(ctx, blockingReader{}, &fakeService{}, false)
	if quit || err != nil {
		t.Errorf("quit=%v err=%v", quit, err)
	}
}

type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }

// TestConcurrentOutput: background replies print while commands run; the
// race detector checks the locking.
func TestConcurrentOutput(t *testing.T) {
	out := &syncbuf.Buffer{}
	c := New(out, "C1", users)
	ctx := context.Background()
	ts, _ := c.PostCard(ctx, "C1", pendingCard())
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_ = c.Reply(ctx, "C1", ts, commands.Message{Spans: []commands.Span{{Text: fmt.Sprint("status ", i)}}})
		})
	}
	script := strings.Repeat("as bob\nas alice\nstatus r-7\n", 20)
	if _, err := c.Run(ctx, strings.NewReader(script), &fakeService{}, false); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := strings.Count(out.String(), "  └ r-7 status "); n != 20 {
		t.Errorf("%d replies printed, want 20", n)
	}
}

// FuzzRun: any script runs without panicking and never writes a control
// character other than newline and tab to the terminal.
func FuzzRun(f *testing.F) {
	f.Add("/isolate web-01 full \x1b[2Jx\nas bob\napprove r-1\n")
	f.Add("as \x07\x1b]0;title\x07\nmachines\nhelp\n")
	f.Fuzz(func(t *testing.T, script string) {
		var out bytes.Buffer
		c := New(&out, "C1", users)
		svc := &fakeService{onCmd: func(inv commands.Invocation) error {
			// Echo the text back the way commands would, as an ephemeral.
			return c.Ephemeral(context.Background(), inv.Channel, inv.User, commands.Message{Spans: []commands.Span{{Text: inv.Text}}})
		}}
		if _, err := c.Run(context.Background(), strings.NewReader(script), svc, false); err != nil {
			return // e.g. a line longer than the scanner's buffer
		}
		for _, r := range out.String() {
			if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
				t.Fatalf("control character %U in output %q", r, out.String())
			}
		}
	})
}
