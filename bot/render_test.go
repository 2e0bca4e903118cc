package bot

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

var update = flag.Bool("update", false, "rewrite bot/testdata/*.golden.json from the current renderer")

var t0 = time.Date(2026, 11, 29, 14, 5, 0, 0, time.UTC)

func i64(v int64) *int64 { return &v }
func tp(t time.Time) *time.Time {
	return &t
}

func testMachine() defender.Machine {
	return defender.Machine{
		ID: "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378", ComputerDNSName: "host-42.corp.example",
		OSPlatform: "Windows11", OSBuild: i64(22631), HealthStatus: "Active", RiskScore: "High",
		ExposureLevel: "Medium", LastSeen: tp(t0.Add(-3 * time.Hour)),
	}
}

func testCard(state store.State, mut func(*store.Request)) commands.Card {
	r := store.Request{
		ID: "r-7", Command: store.Isolate, MachineID: "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378",
		HostName: "host-42.corp.example", IsolationType: "Full", Comment: "suspected ransomware & lateral movement",
		Requester: "U0ALICE", Channel: "C0SECOPS", MessageTS: "1700000000.000100", State: state,
		CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Minute), Version: 1,
	}
	if state != store.Pending {
		r.DecidedBy, r.DecidedAt = "U0BOB", t0.Add(4*time.Minute)
	}
	if mut != nil {
		mut(&r)
	}
	c := commands.Card{Request: r, Machine: testMachine(), Approvers: []string{"U0BOB", "S0MANAGERS"}}
	if r.State == store.Pending {
		c.Buttons = []commands.Button{commands.ButtonApprove, commands.ButtonDeny}
	}
	return c
}

// rendered is what a golden file holds: exactly what is sent to Slack.
type rendered struct {
	Text   string        `json:"text"`
	Blocks []slack.Block `json:"blocks"`
}

func marshal(t testing.TB, blocks []slack.Block, text string) []byte {
	t.Helper()
	// No HTML escaping, so golden files read as Slack will see the text.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rendered{Text: text, Blocks: blocks}); err != nil {
		t.Fatalf("marshal rendered blocks: %v", err)
	}
	return buf.Bytes()
}

// checked checks rendered blocks and text against Block Kit's limits and
// for raw user text, and returns them as sent to Slack.
func checked(t *testing.T, blocks []slack.Block, text string) []byte {
	t.Helper()
	checkLimits(t, blocks, text)
	got := marshal(t, blocks, text)
	assertNoRaw(t, got)
	return got
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./bot -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./bot -update to accept)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRenderCardGolden(t *testing.T) {
	links := Renderer{}
	tests := []struct {
		name string
		card commands.Card
	}{
		{"card_pending_full", testCard(store.Pending, nil)},
		{"card_pending_selective", testCard(store.Pending, func(r *store.Request) { r.IsolationType = "Selective" })},
		{"card_pending_unisolate", testCard(store.Pending, func(r *store.Request) {
			r.Command, r.IsolationType, r.Comment = store.Unisolate, "", "forensics finished\nsecond line"
		})},
		{"card_approved_queued", testCard(store.Approved, func(r *store.Request) { r.RunAt = t0.Add(5*time.Minute + 7*time.Second) })},
		{"card_executing", testCard(store.Executing, func(r *store.Request) { r.MachineActionID = "5382f7ea-7557-4ab7-9782-d50480024a4e" })},
		{"card_done", testCard(store.Done, func(r *store.Request) { r.MachineActionID = "5382f7ea-7557-4ab7-9782-d50480024a4e" })},
		{"card_failed", testCard(store.Failed, func(r *store.Request) { r.Note = "MDE: forbidden (HTTP 403 Forbidden)" })},
		{"card_denied", testCard(store.Denied, func(r *store.Request) { r.DecidedBy = "W0CAROL" })},
		{"card_expired", testCard(store.Expired, func(r *store.Request) { r.DecidedBy, r.DecidedAt = "system", time.Time{} })},
		{"card_cancelled", testCard(store.Cancelled, func(r *store.Request) { r.DecidedBy = "U0ALICE" })},
		{"card_action_pending", withAction(store.Executing, defender.StatusPending, nil)},
		{"card_action_in_progress", withAction(store.Executing, defender.StatusInProgress, nil)},
		{"card_action_succeeded", withAction(store.Done, defender.StatusSucceeded, nil)},
		{"card_action_failed", withAction(store.Failed, defender.StatusFailed, func(a *defender.MachineAction) {
			a.Error = []byte(`"Device is offline <@U1>"`)
			a.ErrorHResult = []byte(`-2147024891`)
			a.TroubleshootInfo = []byte(`{"step":"isolate","detail":"no response"}`)
		})},
		{"card_action_timed_out", withAction(store.Failed, defender.StatusTimeOut, nil)},
		{"card_action_cancelled", withAction(store.Failed, defender.StatusCancelled, func(a *defender.MachineAction) {
			a.CancellationRequestor = "isolate-bot-app"
			a.CancellationComment = "Cancelled by @alice (U0ALICE) via Slack [isolate-bot r-7]"
		})},
		{"card_action_stopped_following", withAction(store.Failed, defender.StatusPending, nil)},
		{"card_unknown_machine", func() commands.Card {
			c := testCard(store.Pending, func(r *store.Request) { r.Comment = "" })
			c.Machine, c.Approvers = defender.Machine{}, nil
			return c
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, text := links.Card(tt.card)
			got := checked(t, blocks, text)
			golden(t, tt.name, got)
			hasButtons := bytes.Contains(got, []byte(ActionApprove))
			if want := tt.card.Request.State == store.Pending; hasButtons != want {
				t.Errorf("buttons present = %v, want %v for state %s", hasButtons, want, tt.card.Request.State)
			}
		})
	}
}

// withAction is a decided card whose MDE action has status, as the
// follow stage renders it (commands' buttons for that status).
func withAction(state store.State, status string, mut func(*defender.MachineAction)) commands.Card {
	c := testCard(state, func(r *store.Request) { r.MachineActionID = "5382f7ea-7557-4ab7-9782-d50480024a4e" })
	a := &defender.MachineAction{ID: c.Request.MachineActionID, Type: "Isolate", Scope: "Full", Status: status,
		MachineID: c.Request.MachineID, ComputerDNSName: c.Request.HostName,
		CreationDateTimeUTC: t0.Add(5 * time.Minute), LastUpdateDateTimeUTC: t0.Add(37 * time.Minute)}
	if mut != nil {
		mut(a)
	}
	c.Action = a
	switch status {
	case defender.StatusPending, defender.StatusInProgress:
		c.Buttons = []commands.Button{commands.ButtonCancel}
	case defender.StatusSucceeded:
		c.Buttons = []commands.Button{commands.ButtonRelease}
	}
	return c
}

// TestRenderCardActionLine: a card whose MDE action is known says where it
// stands in the words of the thread, and the outcome once final.
func TestRenderCardActionLine(t *testing.T) {
	tests := []struct {
		name string
		card commands.Card
		want []string
	}{
		{"pending", withAction(store.Executing, defender.StatusPending, nil), []string{"is *Pending*", "Approved by <@U0BOB>"}},
		{"succeeded", withAction(store.Done, defender.StatusSucceeded, nil), []string{"`host-42.corp.example` isolated (Full) at 14:42 UTC"}},
		{"failed", withAction(store.Failed, defender.StatusFailed, func(a *defender.MachineAction) { a.Error = []byte(`"Device is offline"`) }),
			[]string{"Isolation failed: error: Device is offline"}},
		{"failed without fields", withAction(store.Failed, defender.StatusFailed, nil), []string{"Isolation failed: MDE gave no reason"}},
		{"timed out", withAction(store.Failed, defender.StatusTimeOut, nil), []string{"Isolation timed out"}},
		{"cancelled by a person", withAction(store.Failed, defender.StatusCancelled, func(a *defender.MachineAction) {
			a.CancellationComment = "Cancelled by @alice (U0ALICE) via Slack [isolate-bot r-7]"
		}), []string{"Isolation cancelled by <@U0ALICE>"}},
		{"cancelled in MDE", withAction(store.Failed, defender.StatusCancelled, func(a *defender.MachineAction) {
			a.CancellationRequestor = "soc@contoso.com"
		}), []string{"Isolation cancelled by soc@contoso.com"}},
		{"stopped following", withAction(store.Failed, defender.StatusPending, nil), []string{"Stopped following", "still *Pending*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, _ := Renderer{}.Card(tt.card)
			got := jsonUnquoted(t, marshal(t, blocks, "-"))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("card lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestRenderCardDecidedLine(t *testing.T) {
	tests := []struct {
		state store.State
		want  string
	}{
		{store.Approved, "Approved by <@U0BOB> at 14:09 UTC"},
		{store.Denied, "Denied by <@U0BOB> at 14:09 UTC"},
		{store.Cancelled, "Cancelled by <@U0BOB> at 14:09 UTC"},
		{store.Expired, "Expired at 14:09 UTC"},
		{store.Done, "Done"},
		{store.Failed, "Failed"},
	}
	for _, tt := range tests {
		blocks, _ := Renderer{}.Card(testCard(tt.state, nil))
		got := jsonUnquoted(t, marshal(t, blocks, "-"))
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s card lacks %q:\n%s", tt.state, tt.want, got)
		}
	}
}

func TestRenderPendingButtons(t *testing.T) {
	blocks, _ := Renderer{}.Card(testCard(store.Pending, nil))
	var actions *slack.ActionBlock
	for _, b := range blocks {
		if a, ok := b.(*slack.ActionBlock); ok {
			actions = a
		}
	}
	if actions == nil {
		t.Fatal("pending card has no actions block")
	}
	if actions.BlockID != "req:r-7" {
		t.Errorf("block_id = %q, want req:r-7", actions.BlockID)
	}
	if n := len(actions.Elements.ElementSet); n != 2 {
		t.Fatalf("%d buttons, want 2", n)
	}
	approve := actions.Elements.ElementSet[0].(*slack.ButtonBlockElement)
	deny := actions.Elements.ElementSet[1].(*slack.ButtonBlockElement)
	if approve.ActionID != ActionApprove || approve.Style != slack.StylePrimary || approve.Value != "r-7" {
		t.Errorf("approve button = %+v", approve)
	}
	if approve.Confirm == nil || !strings.Contains(approve.Confirm.Title.Text, "host-42.corp.example") ||
		!strings.Contains(approve.Confirm.Text.Text, "Full") {
		t.Errorf("approve confirm dialog must name host and isolation type: %+v", approve.Confirm)
	}
	if deny.ActionID != ActionDeny || deny.Style != slack.StyleDanger || deny.Value != "r-7" {
		t.Errorf("deny button = %+v", deny)
	}
}

func TestRenderMessageGolden(t *testing.T) {
	created := t0.Add(-time.Minute)
	many := make([]defender.Machine, 30)
	for i := range many {
		m := testMachine()
		m.ID = strings.Repeat("ab", 19) + string(rune('a'+i%26)) + "0"
		many[i] = m
	}
	dup := testMachine()
	dup.IsPotentialDuplication, dup.MergedIntoMachineID = true, "1111111111111111111111111111111111111111"
	r := Renderer{Permalink: func(channel, ts string) string {
		if channel == "C0SECOPS" && ts == "1700000000.000100" {
			return "https://acme.slack.com/archives/C0SECOPS/p1700000000000100?thread_ts=1700000000.000100&cid=C0SECOPS"
		}
		return ""
	}}
	tests := []struct {
		name string
		msg  commands.Message
	}{
		{"msg_spans", commands.Message{Spans: []commands.Span{
			{Kind: commands.User, Text: "U0BOB"}, {Text: " approved "}, {Kind: commands.Code, Text: "r-7"},
			{Text: " for "}, {Kind: commands.Bold, Text: "host-42"}, {Text: "; see "},
			{Kind: commands.Thread, Text: "r-7", Channel: "C0SECOPS", TS: "1700000000.000100"},
			{Text: " and "}, {Kind: commands.Thread, Text: "r-6", Channel: "C0SECOPS", TS: "1690000000.000100"},
			{Text: ". Group: "}, {Kind: commands.User, Text: "S0MANAGERS"},
			{Text: ". Bad id: "}, {Kind: commands.User, Text: "U1>|<!channel"},
		}}},
		{"msg_action", commands.Message{
			Spans: []commands.Span{{Text: "MDE accepted the isolation."}},
			Action: &defender.MachineAction{ID: "5382f7ea-7557-4ab7-9782-d50480024a4e", Type: "Isolate", Scope: "Full",
				Status: "Pending", MachineID: testMachine().ID, ComputerDNSName: "host-42.corp.example",
				RequestorComment: "r-7 by U0ALICE approved by U0BOB: <b>ransomware</b>", CreationDateTimeUTC: created},
		}},
		{"msg_machines", commands.Message{
			Spans:    []commands.Span{{Text: "Several machines match "}, {Kind: commands.Code, Text: "host-42"}, {Text: ":"}},
			Machines: []defender.Machine{testMachine(), dup},
		}},
		{"msg_machines_many", commands.Message{Machines: many}},
		{"msg_long", commands.Message{Spans: []commands.Span{{Text: strings.Repeat("<&> ", 1000)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, text := r.Message(tt.msg)
			got := checked(t, blocks, text)
			golden(t, tt.name, got)
		})
	}
}

// TestRenderEscapesHostileInput puts the classic injection string in every
// user-controlled field of a card and of messages and proves none of it
// comes out raw anywhere in the JSON sent to Slack.
func TestRenderEscapesHostileInput(t *testing.T) {
	const evil = "<!channel> <@U1> <http://x|y> & @here"
	const escaped = "&lt;!channel&gt; &lt;@U1&gt; &lt;http://x|y&gt; &amp; @here"
	for _, state := range []store.State{store.Pending, store.Approved, store.Failed, store.Denied} {
		c := testCard(state, func(r *store.Request) {
			r.Comment, r.HostName, r.Note, r.IsolationType, r.MachineActionID = evil, evil, evil, evil, evil
			r.DecidedBy, r.Requester = evil, evil
		})
		c.Approvers = []string{evil, "U0BOB"}
		m := &c.Machine
		m.OSPlatform, m.HealthStatus, m.RiskScore, m.ExposureLevel, m.Version, m.OSBuild = evil, evil, evil, evil, evil, nil
		blocks, text := Renderer{}.Card(c)
		got := marshal(t, blocks, text)
		assertNoRaw(t, got)
		if !strings.Contains(jsonUnquoted(t, got), escaped) {
			t.Errorf("%s card does not show the comment escaped as %q:\n%s", state, escaped, got)
		}
	}
	msg := commands.Message{
		Spans: []commands.Span{{Text: evil}, {Kind: commands.Bold, Text: evil}, {Kind: commands.Code, Text: evil},
			{Kind: commands.User, Text: evil}, {Kind: commands.Thread, Text: evil, Channel: "C1", TS: "1.2"}},
		Action:   &defender.MachineAction{ID: evil, Type: evil, Scope: evil, Status: evil, MachineID: evil, ComputerDNSName: evil, RequestorComment: evil},
		Machines: []defender.Machine{{ID: evil, ComputerDNSName: evil, OSPlatform: evil, HealthStatus: evil, MergedIntoMachineID: evil}},
	}
	evilLink := Renderer{Permalink: func(string, string) string { return "https://x/|<!channel>" }}
	for _, r := range []Renderer{{}, evilLink} {
		blocks, text := r.Message(msg)
		got := marshal(t, blocks, text)
		assertNoRaw(t, got)
		if !strings.Contains(jsonUnquoted(t, got), escaped) {
			t.Errorf("message does not show user text escaped:\n%s", got)
		}
	}
}

func jsonUnquoted(t testing.TB, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	walkStrings(v, func(s string) { sb.WriteString(s); sb.WriteByte('\n') })
	return sb.String()
}

func walkStrings(v any, f func(string)) {
	switch x := v.(type) {
	case string:
		f(x)
	case []any:
		for _, e := range x {
			walkStrings(e, f)
		}
	case map[string]any:
		for k, e := range x {
			f(k)
			walkStrings(e, f)
		}
	}
}

// botTokens are the only angle-bracket tokens the bot itself may emit.
var botTokens = regexp.MustCompile(`<@[UW][A-Z0-9]{2,}>|<!subteam\^S[A-Z0-9]{2,}>|<https?://[^<>|\s]+\|[^<>]*>`)
var entity = regexp.MustCompile(`&(amp|lt|gt);`)

// rawProblem returns a description of the first raw '<', '>' or '&' (not
// starting an entity) outside the bot's own tokens, or "".
func rawProblem(s string) string {
	rest := botTokens.ReplaceAllString(s, "")
	if i := strings.IndexAny(rest, "<>"); i >= 0 {
		return "raw " + string(rest[i]) + " in " + s
	}
	rest = entity.ReplaceAllString(rest, "")
	if strings.Contains(rest, "&") {
		return "unescaped & in " + s
	}
	return ""
}

func assertNoRaw(t testing.TB, b []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("rendered JSON does not parse: %v", err)
	}
	walkStrings(v, func(s string) {
		if p := rawProblem(s); p != "" {
			t.Errorf("%s", p)
		}
	})
}

func runes(s string) int { return utf8.RuneCountInString(s) }

// checkLimits asserts Block Kit's documented size limits.
func checkLimits(t testing.TB, blocks []slack.Block, text string) {
	t.Helper()
	if runes(text) > maxFallback || text == "" {
		t.Errorf("fallback text has %d characters", runes(text))
	}
	txt := func(what string, o *slack.TextBlockObject, max int) {
		if o == nil {
			return
		}
		if n := runes(o.Text); n > max || n == 0 {
			t.Errorf("%s has %d characters, limit %d", what, n, max)
		}
		if o.Type == slack.MarkdownType && !o.Verbatim {
			t.Errorf("%s is mrkdwn without verbatim", what)
		}
	}
	for _, b := range blocks {
		switch x := b.(type) {
		case *slack.HeaderBlock:
			txt("header", x.Text, maxHeader)
		case *slack.SectionBlock:
			txt("section text", x.Text, maxSectionText)
			if len(x.Fields) > maxFields {
				t.Errorf("section has %d fields", len(x.Fields))
			}
			for _, f := range x.Fields {
				txt("field", f, maxField)
			}
		case *slack.ContextBlock:
			for _, e := range x.ContextElements.Elements {
				if o, ok := e.(*slack.TextBlockObject); ok {
					txt("context", o, maxSectionText)
				}
			}
		case *slack.ActionBlock:
			if len(x.BlockID) > maxID {
				t.Errorf("block_id too long")
			}
			for _, e := range x.Elements.ElementSet {
				btn := e.(*slack.ButtonBlockElement)
				txt("button", btn.Text, maxButtonText)
				if len(btn.ActionID) > maxID || len(btn.Value) > maxValue {
					t.Errorf("button ids too long")
				}
				if c := btn.Confirm; c != nil {
					txt("confirm title", c.Title, maxConfirmHead)
					txt("confirm text", c.Text, maxConfirmText)
				}
			}
		default:
			t.Errorf("unexpected block type %T", b)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijkl", 5, "abcd…"},
		{"ab &amp; cd", 5, "ab …"},     // never cut an entity
		{"ab <@U123> cd", 8, "ab …"},   // never cut a token
		{"<@U123> cd", 9, "<@U123> …"}, // a whole token stays
		{"ääääää", 4, "äää…"},          // characters, not bytes
		{"x", 1, "x"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.max); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestMention(t *testing.T) {
	tests := map[string]string{
		"U0BOB": "<@U0BOB>", "W123": "<@W123>", "S0MGR": "<!subteam^S0MGR>",
		"u0bob": "u0bob", "U1": "U1", "system": "system", "": "unknown",
		"U1><!channel": "U1&gt;&lt;!channel", "C0CHAN": "C0CHAN",
	}
	for in, want := range tests {
		if got := mention(in); got != want {
			t.Errorf("mention(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRender: whatever strings users, MDE or the store supply, the rendered
// JSON holds no '<' or '>' outside the bot's own mention and link tokens,
// no bare '&', and respects the Block Kit limits.
func FuzzRender(f *testing.F) {
	f.Add("<!channel> <@U1> <http://x|y> & @here", "host<>", "U0BOB", "r-1", "note&")
	f.Add(strings.Repeat("&", 3000), strings.Repeat("<", 200), "S0MGR", strings.Repeat("r", 300), "\xff\xfe")
	f.Add("a\nb\r\n> quoted", "`code`", "W1", "", "*bold*")
	f.Fuzz(func(t *testing.T, comment, host, user, id, note string) {
		c := testCard(store.Pending, func(r *store.Request) {
			r.Comment, r.HostName, r.Requester, r.ID, r.Note, r.IsolationType = comment, host, user, id, note, host
		})
		c.Approvers = []string{user, id}
		c.Machine.OSPlatform, c.Machine.HealthStatus = note, comment
		for _, state := range []store.State{store.Pending, store.Failed} {
			c.Request.State, c.Request.DecidedBy = state, user
			blocks, text := Renderer{}.Card(c)
			checkLimits(t, blocks, text)
			assertNoRaw(t, marshal(t, blocks, text))
		}
		m := commands.Message{Spans: []commands.Span{{Text: comment}, {Kind: commands.Code, Text: host},
			{Kind: commands.User, Text: user}, {Kind: commands.Bold, Text: note},
			{Kind: commands.Thread, Text: id, Channel: "C1", TS: "1.1"}},
			Action: &defender.MachineAction{ID: id, RequestorComment: comment, ComputerDNSName: host}}
		blocks, text := Renderer{Permalink: func(string, string) string { return "https://x.example/" + note }}.Message(m)
		checkLimits(t, blocks, text)
		assertNoRaw(t, marshal(t, blocks, text))
	})
}

// TestRenderNeutralisesInvisibleCharacters: bidi controls and zero-width
// characters in a comment or host name never reach Slack, where they could
// reverse or hide what the approver reads.
func TestRenderNeutralisesInvisibleCharacters(t *testing.T) {
	const sneaky = "invoice\u202Efdp.exe we\u200Bb-01\u2066x\u2069\uFEFF"
	c := testCard(store.Pending, func(r *store.Request) { r.Comment, r.HostName = sneaky, sneaky })
	blocks, text := Renderer{}.Card(c)
	card := jsonUnquoted(t, marshal(t, blocks, text))
	mb, mt := Renderer{}.Message(commands.Message{Spans: []commands.Span{{Text: sneaky}, {Kind: commands.Code, Text: sneaky}}})
	message := jsonUnquoted(t, marshal(t, mb, mt))
	for name, out := range map[string]string{"card": card, "message": message} {
		for _, r := range out {
			if r != '\n' && (unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r)) {
				t.Errorf("%s still holds %U:\n%q", name, r, out)
			}
		}
		if !strings.Contains(out, "invoice\uFFFDfdp.exe") {
			t.Errorf("%s does not show the neutralised text visibly:\n%q", name, out)
		}
	}
}
