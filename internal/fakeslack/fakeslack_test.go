package fakeslack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// wait is the generous upper bound for anything that should happen "soon";
// tests return as soon as the condition holds.
const wait = 5 * time.Second

func newAPI(fs *Server, opts ...slack.Option) *slack.Client {
	return slack.New(fs.BotToken(), append([]slack.Option{
		slack.OptionAppLevelToken(fs.AppToken()), slack.OptionAPIURL(fs.APIURL()),
	}, opts...)...)
}

// runClient runs a real slack-go Socket Mode client against fs until the
// test ends, passing every event to handle (on one goroutine). It returns a
// channel that receives RunContext's result.
func runClient(t *testing.T, api *slack.Client, handle func(socketmode.Event, *socketmode.Client)) <-chan error {
	t.Helper()
	c := socketmode.New(api, socketmode.OptionPingInterval(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		runErr <- c.RunContext(ctx)
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case evt := <-c.Events:
				handle(evt, c)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("socketmode client did not stop within 5s of cancel")
		}
	})
	return runErr
}

// ackAll acks every envelope without payload.
func ackAll(evt socketmode.Event, c *socketmode.Client) {
	if evt.Request != nil && evt.Request.EnvelopeID != "" {
		_ = c.Ack(*evt.Request)
	}
}

// TestSlashCommandRoundTrip proves the handshake (hello, PINGs answered,
// no watchdog reconnect), that a slash command decodes as
// EventTypeSlashCommand with every field, and that the ack and its payload
// are recorded.
func TestSlashCommandRoundTrip(t *testing.T) {
	fs := New(t, Options{PingInterval: 100 * time.Millisecond})
	hello := make(chan socketmode.Request, 1)
	cmds := make(chan slack.SlashCommand, 1)
	runClient(t, newAPI(fs), func(evt socketmode.Event, c *socketmode.Client) {
		switch evt.Type {
		case socketmode.EventTypeHello:
			hello <- *evt.Request
		case socketmode.EventTypeSlashCommand:
			cmds <- evt.Data.(slack.SlashCommand)
			_ = c.Ack(*evt.Request, map[string]any{"text": "Queued isolation of host-42"})
		}
	})
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-hello:
		if h.NumConnections != 1 || h.ConnectionInfo.AppID != "A0APP" {
			t.Errorf("hello = %+v, want num_connections 1 and app id A0APP", h)
		}
	case <-time.After(wait):
		t.Fatal("no hello event")
	}

	env := fs.SlashCommand("U1", "C1", "/isolate", "host-42 full ransomware & <stuff>")
	if env.SentAt.IsZero() || len(env.Deliveries) != 1 || env.Deliveries[0].ConnID != 1 {
		t.Errorf("envelope not sent on connection 1: %+v", env)
	}
	select {
	case sc := <-cmds:
		want := slack.SlashCommand{Command: "/isolate", Text: "host-42 full ransomware & <stuff>", UserID: "U1",
			ChannelID: "C1", TeamID: "T0TEAM", TriggerID: env.TriggerID, ResponseURL: env.ResponseURL}
		if sc.Command != want.Command || sc.Text != want.Text || sc.UserID != want.UserID || sc.ChannelID != want.ChannelID ||
			sc.TeamID != want.TeamID || sc.TriggerID != want.TriggerID || sc.ResponseURL != want.ResponseURL || sc.UserName != "u1" {
			t.Errorf("slash command = %+v\nwant %+v", sc, want)
		}
	case <-time.After(wait):
		t.Fatal("slash command not received")
	}
	ack, err := fs.WaitAck(env.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Known || ack.Duplicate || ack.ConnID != 1 || ack.Latency <= 0 || ack.Latency > wait {
		t.Errorf("ack = %+v", ack)
	}
	if !strings.Contains(string(ack.Payload), "Queued isolation") {
		t.Errorf("ack payload = %s", ack.Payload)
	}
	eph, err := fs.WaitEphemeral("U1", func(e []Ephemeral) bool { return len(e) == 1 }, wait)
	if err != nil {
		t.Fatal(err)
	}
	if eph[0].Via != "ack" || eph[0].Channel != "C1" || eph[0].Text != "Queued isolation of host-42" {
		t.Errorf("ephemeral from ack = %+v", eph[0])
	}

	// The client's watchdog (1 s) is only satisfied by our PINGs: after
	// several of them have been answered, the first connection must still
	// be the only one.
	err = fs.waitFor(wait, "5 pongs", func() bool { return fs.conns[0].Pongs >= 5 })
	if err != nil {
		t.Fatal(err)
	}
	if n := fs.ConnectionsOpened(); n != 1 {
		t.Errorf("connections opened = %d, want 1 (client reconnected)", n)
	}
}

// TestClickReachesBlockActionHandler proves a Click is a block_actions
// payload slack-go decodes strictly and routes by action_id: block_id,
// value and the posted message's blocks arrive intact.
func TestClickReachesBlockActionHandler(t *testing.T) {
	fs := New(t, Options{Channels: []string{"C1"}})
	api := newAPI(fs)
	confirm := slack.NewConfirmationBlockObject(
		slack.NewTextBlockObject(slack.PlainTextType, "Isolate host-42?", false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "Full isolation cuts all traffic.", false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "Isolate", false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false))
	approve := slack.NewButtonBlockElement("isolate_approve", "req-42",
		slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).WithStyle(slack.StylePrimary).WithConfirm(confirm)
	deny := slack.NewButtonBlockElement("isolate_deny", "req-42",
		slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)).WithStyle(slack.StyleDanger)
	blocks := []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*Isolation requested* &amp; `host-42`", false, true), nil, nil, slack.SectionBlockOptionBlockID("req:42:summary")),
		slack.NewActionBlock("req:42", approve, deny),
	}
	_, ts, err := api.PostMessage("C1", slack.MsgOptionText("Isolation request", false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := fs.Message("C1", ts)
	if b, ok := msg.Button("isolate_approve"); !ok || b.BlockID != "req:42" || b.Value != "req-42" || !b.Confirm || b.Style != "primary" {
		t.Errorf("Button(isolate_approve) = %+v, %v", b, ok)
	}

	clicks := make(chan slack.InteractionCallback, 1)
	other := make(chan socketmode.EventType, 10)
	c := socketmode.New(api, socketmode.OptionPingInterval(time.Second))
	h := socketmode.NewSocketmodeHandler(c)
	h.HandleInteractionBlockAction("isolate_approve", func(evt *socketmode.Event, c *socketmode.Client) {
		_ = c.Ack(*evt.Request)
		clicks <- evt.Data.(slack.InteractionCallback)
	})
	h.HandleDefault(func(evt *socketmode.Event, c *socketmode.Client) {
		if evt.Type == socketmode.EventTypeInteractive || evt.Type == socketmode.EventTypeErrorBadMessage {
			other <- evt.Type
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.RunEventLoopContext(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}

	env := fs.ClickButton("U0MGR", "C1", ts, "isolate_approve")
	select {
	case cb := <-clicks:
		if len(cb.ActionCallback.BlockActions) != 1 {
			t.Fatalf("block actions = %+v", cb.ActionCallback)
		}
		a := cb.ActionCallback.BlockActions[0]
		if a.BlockID != "req:42" || a.Value != "req-42" || a.Text.Text != "Approve" || cb.User.ID != "U0MGR" ||
			cb.Channel.ID != "C1" || cb.Container.MessageTs != ts || cb.ResponseURL != env.ResponseURL {
			t.Errorf("callback = action %+v user %+v channel %+v container %+v", a, cb.User, cb.Channel.ID, cb.Container)
		}
		if n := len(cb.Message.Blocks.BlockSet); n != 2 || cb.Message.Timestamp != ts || cb.Message.BotID != "B0BOT" {
			t.Errorf("message in payload: %d blocks, ts %q, bot %q", n, cb.Message.Timestamp, cb.Message.BotID)
		}
	case typ := <-other:
		t.Fatalf("click went to the default handler as %s", typ)
	case <-time.After(wait):
		t.Fatal("click not received")
	}
	if _, err := fs.WaitAck(env.ID, wait); err != nil {
		t.Fatal(err)
	}
}

// TestReconnects proves the client reconnects after a disconnect message
// and after the connection is dropped, and that envelopes sent while no
// connection is live are delivered once one is.
func TestReconnects(t *testing.T) {
	fs := New(t, Options{})
	runClient(t, newAPI(fs), ackAll)
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}

	fs.Disconnect("refresh_requested")
	if err := fs.WaitConnectionsOpened(2, wait); err != nil {
		t.Fatal(err)
	}
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	// The client closes the old socket itself, well within the grace period.
	if err := fs.waitFor(wait, "connection 1 closed", func() bool { return !fs.conns[0].Live }); err != nil {
		t.Fatal(err)
	}
	if st := fs.ConnStats()[0]; !st.Draining {
		t.Errorf("connection 1 = %+v, want draining", st)
	}

	fs.DropConnections()
	if fs.Connections() != 0 {
		t.Errorf("Connections() = %d right after DropConnections, want 0", fs.Connections())
	}
	env := fs.SlashCommand("U1", "C1", "/isolate", "queued while down")
	if err := fs.WaitConnectionsOpened(3, wait); err != nil {
		t.Fatal(err)
	}
	ack, err := fs.WaitAck(env.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	if ack.ConnID != 3 {
		t.Errorf("queued envelope acked on connection %d, want 3", ack.ConnID)
	}
}

// TestConnectionsOpenFailures proves transient apps.connections.open
// failures are retried by the client, while invalid_auth is fatal.
func TestConnectionsOpenFailures(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		fs := New(t, Options{})
		fs.FailNext("apps.connections.open", http.StatusServiceUnavailable, -1, "")
		fs.FailNext("apps.connections.open", 0, -1, "internal_error")
		runClient(t, newAPI(fs), ackAll)
		if err := fs.WaitConnections(1, wait); err != nil {
			t.Fatal(err)
		}
		calls := fs.Calls("apps.connections.open")
		if len(calls) != 3 || calls[0].Status != 503 || calls[1].Error != "internal_error" || calls[2].Error != "" {
			t.Errorf("apps.connections.open calls = %+v", calls)
		}
		if calls[0].Auth != "app" {
			t.Errorf("auth = %q, want app (Bearer xapp token)", calls[0].Auth)
		}
	})
	t.Run("until further notice", func(t *testing.T) {
		fs := New(t, Options{})
		fs.FailAlways("apps.connections.open", 0, -1, "internal_error")
		runClient(t, newAPI(fs), ackAll)
		if _, err := fs.WaitCalls("apps.connections.open", 2, wait); err != nil {
			t.Fatal(err)
		}
		if fs.Connections() != 0 {
			t.Fatal("connected despite FailAlways")
		}
		fs.ClearFaults("apps.connections.open")
		if err := fs.WaitConnections(1, wait); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("invalid_auth is fatal", func(t *testing.T) {
		fs := New(t, Options{})
		api := slack.New(fs.BotToken(), slack.OptionAppLevelToken("xapp-wrong"), slack.OptionAPIURL(fs.APIURL()))
		runErr := runClient(t, api, func(socketmode.Event, *socketmode.Client) {})
		select {
		case err := <-runErr:
			if err == nil || err.Error() != "invalid_auth" {
				t.Errorf("RunContext = %v, want invalid_auth", err)
			}
		case <-time.After(wait):
			t.Fatal("RunContext did not return on invalid_auth")
		}
	})
}

// TestUnackedEnvelopeIsRedelivered proves an envelope not acked in time is
// sent again, once, with retry_attempt 1 and retry_reason timeout.
func TestUnackedEnvelopeIsRedelivered(t *testing.T) {
	fs := New(t, Options{RedeliveryTimeout: 200 * time.Millisecond})
	attempts := make(chan int, 4)
	runClient(t, newAPI(fs), func(evt socketmode.Event, c *socketmode.Client) {
		if evt.Type != socketmode.EventTypeSlashCommand {
			return
		}
		attempts <- evt.Request.RetryAttempt
		if evt.Request.RetryAttempt == 1 && evt.Request.RetryReason == "timeout" {
			_ = c.Ack(*evt.Request) // ignore the first delivery, ack the retry
		}
	})
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	env := fs.SlashCommand("U1", "C1", "/isolate", "host-1 full x")
	ack, err := fs.WaitAck(env.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fs.WaitDeliveries(env.ID, 2, wait)
	if len(got.Deliveries) != 2 || got.Deliveries[1].RetryAttempt != 1 || !got.Acked {
		t.Errorf("deliveries = %+v acked %v", got.Deliveries, got.Acked)
	}
	if gap := got.Deliveries[1].At.Sub(got.Deliveries[0].At); gap < 200*time.Millisecond {
		t.Errorf("redelivered after %v, want >= the 200ms timeout", gap)
	}
	if ack.Latency < 200*time.Millisecond {
		t.Errorf("ack latency %v is measured from the first send, want >= 200ms", ack.Latency)
	}
	if a, b := <-attempts, <-attempts; a != 0 || b != 1 {
		t.Errorf("retry attempts seen by client = %d, %d; want 0, 1", a, b)
	}
	// Acked: no third delivery, however long we look at it.
	if n := len(fs.Envelopes()[0].Deliveries); n != 2 {
		t.Errorf("deliveries = %d, want 2", n)
	}
}

// TestTwoClientsShareEnvelopesRoundRobin proves envelopes are split over
// replicas, not mirrored.
func TestTwoClientsShareEnvelopesRoundRobin(t *testing.T) {
	fs := New(t, Options{})
	var mu sync.Mutex
	seen := map[string]int{}
	for _, name := range []string{"a", "b"} {
		runClient(t, newAPI(fs), func(evt socketmode.Event, c *socketmode.Client) {
			if evt.Type == socketmode.EventTypeSlashCommand {
				mu.Lock()
				seen[name]++
				mu.Unlock()
				_ = c.Ack(*evt.Request)
			}
		})
	}
	if err := fs.WaitConnections(2, wait); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 6 {
		ids = append(ids, fs.SlashCommand("U1", "C1", "/isolate", "x").ID)
	}
	for _, id := range ids {
		if _, err := fs.WaitAck(id, wait); err != nil {
			t.Fatal(err)
		}
	}
	st := fs.ConnStats()
	if len(st) != 2 || st[0].Delivered != 3 || st[1].Delivered != 3 || st[0].Acks != 3 || st[1].Acks != 3 {
		t.Errorf("conn stats = %+v, want 3 deliveries and acks each", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Errorf("client a saw %d, b saw %d; want 3 each", seen["a"], seen["b"])
	}
}

// TestWebAPI drives each Web API method through slack-go.
func TestWebAPI(t *testing.T) {
	fs := New(t, Options{
		Channels:   []string{"C1"},
		UserGroups: map[string][]string{"S1": {"U1", "U2"}},
		Users:      map[string]User{"U1": {Name: "alice", RealName: "Alice", Email: "alice@example.com"}},
	})
	api := newAPI(fs)
	ctx := context.Background()

	t.Run("auth.test with both tokens", func(t *testing.T) {
		r, err := api.AuthTestContext(ctx)
		if err != nil || r.UserID != "U0BOT" || r.TeamID != "T0TEAM" || r.BotID != "B0BOT" {
			t.Errorf("bot auth.test = %+v, %v", r, err)
		}
		app := slack.New(fs.AppToken(), slack.OptionAPIURL(fs.APIURL()))
		if r, err := app.AuthTestContext(ctx); err != nil || r.TeamID != "T0TEAM" {
			t.Errorf("app auth.test = %+v, %v", r, err)
		}
		bad := slack.New("xoxb-wrong", slack.OptionAPIURL(fs.APIURL()))
		if _, err := bad.AuthTestContext(ctx); err == nil || err.Error() != "invalid_auth" {
			t.Errorf("wrong token: %v, want invalid_auth", err)
		}
		for _, c := range fs.Calls("auth.test") {
			if c.Form.Has("token") {
				t.Errorf("token recorded in call form: %v", c.Form)
			}
		}
	})

	t.Run("post, thread, update, permalink", func(t *testing.T) {
		_, root, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("root", false), slack.MsgOptionDisableLinkUnfurl())
		if err != nil {
			t.Fatal(err)
		}
		_, r1, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply 1", false), slack.MsgOptionTS(root))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply 2", false), slack.MsgOptionTS(root)); err != nil {
			t.Fatal(err)
		}
		if !(root < r1) || len(root) != len("1700000000.000100") {
			t.Errorf("ts not increasing / wrong shape: %q, %q", root, r1)
		}
		th, err := fs.WaitThread("C1", root, func(m []Message) bool { return len(m) == 2 }, wait)
		if err != nil {
			t.Fatal(err)
		}
		if th[0].Text != "reply 1" || th[1].Text != "reply 2" || th[0].ThreadTS != root {
			t.Errorf("thread = %+v", th)
		}
		if m, _ := fs.Message("C1", root); m.Form.Get("unfurl_links") != "false" {
			t.Errorf("form fields not recorded: %v", m.Form)
		}
		_, _, _, err = api.UpdateMessageContext(ctx, "C1", root, slack.MsgOptionText("decided", false), slack.MsgOptionBlocks())
		if err != nil {
			t.Fatal(err)
		}
		m, _ := fs.Message("C1", root)
		if m.Text != "decided" || len(m.Updates) != 1 || m.Updates[0].Text != "root" {
			t.Errorf("after update: %+v", m)
		}
		link, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: root})
		if err != nil || link != "https://fake.slack.test/archives/C1/p"+strings.ReplaceAll(root, ".", "") {
			t.Errorf("permalink = %q, %v", link, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tooLong := slack.NewActionBlock("b1", slack.NewButtonBlockElement("a1", "v",
			slack.NewTextBlockObject(slack.PlainTextType, strings.Repeat("x", 76), false, false)))
		cases := []struct {
			name string
			call func() error
			want string
		}{
			{"not in channel", func() error {
				_, _, err := api.PostMessageContext(ctx, "C2", slack.MsgOptionText("x", false))
				return err
			}, "not_in_channel"},
			{"invalid blocks", func() error {
				_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false), slack.MsgOptionBlocks(tooLong))
				return err
			}, "invalid_blocks"},
			{"update unknown", func() error {
				_, _, _, err := api.UpdateMessageContext(ctx, "C1", "1.2", slack.MsgOptionText("x", false))
				return err
			}, "message_not_found"},
			{"no text", func() error {
				_, _, err := api.PostMessageContext(ctx, "C1")
				return err
			}, "no_text"},
			{"unknown group", func() error {
				_, err := api.GetUserGroupMembersContext(ctx, "S404")
				return err
			}, "no_such_subteam"},
			{"unknown user", func() error {
				_, err := api.GetUserInfoContext(ctx, "U404")
				return err
			}, "user_not_found"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.call()
				var se slack.SlackErrorResponse
				if !errors.As(err, &se) || se.Err != tc.want {
					t.Errorf("err = %v, want %s", err, tc.want)
				}
			})
		}
	})

	t.Run("users, groups, ephemeral", func(t *testing.T) {
		u, err := api.GetUserInfoContext(ctx, "U1")
		if err != nil || u.Name != "alice" || u.Profile.Email != "alice@example.com" || u.Deleted {
			t.Errorf("users.info = %+v, %v", u, err)
		}
		members, err := api.GetUserGroupMembersContext(ctx, "S1")
		if err != nil || strings.Join(members, ",") != "U1,U2" {
			t.Errorf("group members = %v, %v", members, err)
		}
		if _, err := api.PostEphemeralContext(ctx, "C1", "U2", slack.MsgOptionText("only you", false)); err != nil {
			t.Fatal(err)
		}
		if e := fs.Ephemerals("U2"); len(e) != 1 || e[0].Text != "only you" || e[0].Via != "chat.postEphemeral" {
			t.Errorf("ephemerals = %+v", e)
		}
	})

	t.Run("429 with Retry-After", func(t *testing.T) {
		fs.FailNext("chat.postMessage", http.StatusTooManyRequests, 7, "")
		_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
			t.Errorf("err = %v, want *slack.RateLimitedError after 7s", err)
		}
		fs.FailNext("chat.postMessage", http.StatusTooManyRequests, -1, "")
		_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
		var sc slack.StatusCodeError
		if !errors.As(err, &sc) || sc.Code != 429 {
			t.Errorf("err = %v, want StatusCodeError 429", err)
		}
		if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false)); err != nil {
			t.Errorf("fault outlived FailNext: %v", err)
		}
	})

	t.Run("hang", func(t *testing.T) {
		fs.Hang("users.info", time.Minute)
		impatient := slack.New(fs.BotToken(), slack.OptionAPIURL(fs.APIURL()),
			slack.OptionHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
		if _, err := impatient.GetUserInfoContext(ctx, "U1"); err == nil {
			t.Error("hung call succeeded")
		}
		fs.Hang("users.info", 0)
		if _, err := impatient.GetUserInfoContext(ctx, "U1"); err != nil {
			t.Errorf("after Hang(0): %v", err)
		}
	})
}

// TestResponseURL proves response_url posts made by slack-go are recorded
// and applied: ephemeral, replace_original, and the five-use limit.
func TestResponseURL(t *testing.T) {
	fs := New(t, Options{})
	api := newAPI(fs)
	_, ts, err := api.PostMessage("C1", slack.MsgOptionText("card", false))
	if err != nil {
		t.Fatal(err)
	}
	env := fs.Click("U1", "C1", ts, "isolate_approve", "req:1", "req-1")
	if _, _, err := api.PostMessage("C1", slack.MsgOptionResponseURL(env.ResponseURL, slack.ResponseTypeEphemeral),
		slack.MsgOptionText("only you", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.PostMessage("C1", slack.MsgOptionReplaceOriginal(env.ResponseURL),
		slack.MsgOptionText("replaced", false)); err != nil {
		t.Fatal(err)
	}
	if e := fs.Ephemerals("U1"); len(e) != 1 || e[0].Text != "only you" || e[0].Via != "response_url" {
		t.Errorf("ephemerals = %+v", e)
	}
	if m, _ := fs.Message("C1", ts); m.Text != "replaced" || len(m.Updates) != 1 {
		t.Errorf("message after replace_original = %+v", m)
	}
	for range 3 {
		if _, _, err := api.PostMessage("C1", slack.MsgOptionResponseURL(env.ResponseURL, slack.ResponseTypeEphemeral),
			slack.MsgOptionText("again", false)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := api.PostMessage("C1", slack.MsgOptionResponseURL(env.ResponseURL, slack.ResponseTypeEphemeral),
		slack.MsgOptionText("sixth", false)); err == nil {
		t.Error("sixth use of a response_url succeeded")
	}
	if p := fs.ResponsePosts(); len(p) != 6 || p[0].EnvelopeID != env.ID || p[5].Status != 404 {
		t.Errorf("response posts = %d, first %+v", len(p), p[0])
	}
}

func TestValidateBlocks(t *testing.T) {
	cases := []struct {
		name, blocks, want string // want: "" for valid, else a substring of a problem
	}{
		{"empty", `[]`, ""},
		{"section", `[{"type":"section","block_id":"a","text":{"type":"mrkdwn","text":"hi"}}]`, ""},
		{"not array", `{"type":"section"}`, "JSON array"},
		{"section text too long", `[{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("x", 3001) + `"}}]`, "/blocks/0/text/text"},
		{"duplicate block_id", `[{"type":"divider","block_id":"a"},{"type":"divider","block_id":"a"}]`, "duplicate block_id"},
		{"mrkdwn button", `[{"type":"actions","elements":[{"type":"button","action_id":"x","text":{"type":"mrkdwn","text":"b"}}]}]`, "must be plain_text"},
		{"bad style", `[{"type":"actions","elements":[{"type":"button","action_id":"x","style":"green","text":{"type":"plain_text","text":"b"}}]}]`, "primary or danger"},
		{"duplicate action_id", `[{"type":"actions","elements":[{"type":"button","action_id":"x","text":{"type":"plain_text","text":"b"}},{"type":"button","action_id":"x","text":{"type":"plain_text","text":"c"}}]}]`, "duplicate action_id"},
		{"unknown type", `[{"type":"bogus"}]`, "unsupported block type"},
		{"header too long", `[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("h", 151) + `"}}]`, "less than 151"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, problems := validateBlocks([]byte(tc.blocks))
			got := strings.Join(problems, "; ")
			if tc.want == "" {
				if got != "" || !json.Valid(out) {
					t.Errorf("problems %q, out %s; want valid", got, out)
				}
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("problems %q, want one containing %q", got, tc.want)
			}
		})
	}
}

// FuzzValidateBlocks: no input panics, and whatever is accepted is JSON that
// slack-go decodes (it is echoed back to the bot in click payloads).
func FuzzValidateBlocks(f *testing.F) {
	f.Add(`[{"type":"section","text":{"type":"mrkdwn","text":"a &amp; b"}}]`)
	f.Add(`[{"type":"actions","block_id":"req:1","elements":[{"type":"button","action_id":"a","value":"v","text":{"type":"plain_text","text":"OK"}}]}]`)
	f.Add(`[{"type":"context","elements":[{"type":"mrkdwn","text":"x"}]}]`)
	f.Add(`[null]`)
	f.Fuzz(func(t *testing.T, in string) {
		out, problems := validateBlocks([]byte(in))
		if len(problems) > 0 {
			return
		}
		var b slack.Blocks
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("accepted %q but slack-go cannot decode it: %v", out, err)
		}
		_ = Message{Blocks: out}.Buttons()
		_ = Message{Blocks: out}.AllText()
	})
}

// dialRaw opens a Socket Mode connection with plain gorilla, the way
// slack-go does (Bearer xapp token, Origin header), and reads the hello.
func dialRaw(t *testing.T, fs *Server) (*websocket.Conn, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fs.APIURL()+"apps.connections.open", nil)
	req.Header.Set("Authorization", "Bearer "+fs.AppToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var open struct {
		OK  bool   `json:"ok"`
		URL string `json:"url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&open); err != nil || !open.OK || !strings.HasPrefix(open.URL, "ws://127.0.0.1:") {
		t.Fatalf("apps.connections.open = %+v, %v", open, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(open.URL, http.Header{"Origin": {"https://api.slack.com"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	var hello map[string]any
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	if err := ws.ReadJSON(&hello); err != nil || hello["type"] != "hello" {
		t.Fatalf("first frame = %v, %v; want hello", hello, err)
	}
	return ws, open.URL
}

// TestAckOnAnyConnection proves an ack is accepted on a connection other
// than the one the envelope went to (slack-go queues acks across
// reconnects), that tickets are single-use, and that PINGs are sent.
func TestAckOnAnyConnection(t *testing.T) {
	fs := New(t, Options{PingInterval: 50 * time.Millisecond})
	ws1, url1 := dialRaw(t, fs)
	if _, resp, err := websocket.DefaultDialer.Dial(url1, http.Header{"Origin": {"https://api.slack.com"}}); err == nil ||
		resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("reusing a ticket: err %v, want 401", err)
	}
	pings := make(chan struct{}, 100)
	ws1.SetPingHandler(func(string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return nil
	})
	frames := make(chan []byte, 10)
	readerDone := make(chan struct{})
	go func() { // ping handlers only run while someone reads
		defer close(readerDone)
		for {
			_, data, err := ws1.ReadMessage()
			if err != nil {
				return
			}
			frames <- data
		}
	}()
	_ = ws1.SetReadDeadline(time.Time{})
	env := fs.SlashCommand("U1", "C1", "/isolate", "x")
	var got struct {
		EnvelopeID   string          `json:"envelope_id"`
		Type         string          `json:"type"`
		Accepts      bool            `json:"accepts_response_payload"`
		RetryAttempt int             `json:"retry_attempt"`
		Payload      json.RawMessage `json:"payload"`
	}
	select {
	case data := <-frames:
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("envelope not received")
	}
	if got.EnvelopeID != env.ID || got.Type != "slash_commands" || !got.Accepts || got.RetryAttempt != 0 ||
		!strings.Contains(string(got.Payload), `"trigger_id":"`+env.TriggerID+`"`) {
		t.Errorf("envelope frame = %+v", got)
	}
	select {
	case <-pings:
	case <-time.After(wait):
		t.Error("no PING within 5s")
	}

	ws2, _ := dialRaw(t, fs)
	_ = ws1.Close()
	<-readerDone
	if err := ws2.WriteJSON(map[string]string{"envelope_id": env.ID}); err != nil {
		t.Fatal(err)
	}
	ack, err := fs.WaitAck(env.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	if ack.ConnID != 2 || !ack.Known || ack.Duplicate || ack.Payload != nil {
		t.Errorf("ack = %+v, want known, first, on connection 2, no payload", ack)
	}
	if err := ws2.WriteMessage(websocket.TextMessage, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := fs.waitFor(wait, "bad frame counted", func() bool { return fs.conns[1].BadFrames == 1 }); err != nil {
		t.Error(err)
	}
}
