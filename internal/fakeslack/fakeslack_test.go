package fakeslack

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// wait is the generous upper bound for anything that should happen "soon";
// tests return as soon as the condition holds.
const wait = 15 * time.Second // generous: CI runs every package at once on 2 cores

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
