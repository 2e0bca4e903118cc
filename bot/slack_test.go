package bot

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/syncbuf"
	"github.com/soc/isolate-bot/store"
)

func TestSlackPostCard(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}})
	s := NewSlack(newAPI(fs), zerolog.Nop())
	ctx := context.Background()
	c := testCard(store.Pending, func(r *store.Request) { r.Comment = "<!channel> <@U1> <http://x|y> & @here" })
	ts, err := s.PostCard(ctx, "C1", c)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := fs.Message("C1", ts)
	if !ok {
		t.Fatalf("no message at %s", ts)
	}
	if got := m.Form.Get("unfurl_links"); got != "false" {
		t.Errorf("unfurl_links = %q, want false", got)
	}
	for _, f := range []string{"link_names", "parse"} {
		if m.Form.Has(f) {
			t.Errorf("%s must never be sent, got %q", f, m.Form.Get(f))
		}
	}
	if _, ok := m.Button(ActionApprove); !ok {
		t.Error("posted card has no Approve button")
	}
	all := m.AllText()
	if strings.Contains(all, "<!channel>") || !strings.Contains(all, "&lt;!channel&gt;") {
		t.Errorf("comment not escaped in the posted card:\n%s", all)
	}

	// Decided: chat.update replaces the blocks, buttons gone.
	c.Request.State, c.Request.DecidedBy, c.Request.DecidedAt = store.Denied, "U0BOB", t0
	c.Buttons = nil // commands offers nothing on a decided card
	if err := s.UpdateCard(ctx, "C1", ts, c); err != nil {
		t.Fatal(err)
	}
	m, _ = fs.Message("C1", ts)
	if _, ok := m.Button(ActionApprove); ok || len(m.Updates) != 1 || !strings.Contains(m.AllText(), "Denied by <@U0BOB>") {
		t.Errorf("updated card: buttons still there or no denial line (%d updates):\n%s", len(m.Updates), m.AllText())
	}
}

func TestSlackNotInChannel(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}})
	s := NewSlack(newAPI(fs), zerolog.Nop())
	_, err := s.PostCard(context.Background(), "C2", testCard(store.Pending, nil))
	if !errors.Is(err, commands.ErrNotInChannel) {
		t.Errorf("post in a channel the bot is not in: %v, want ErrNotInChannel", err)
	}
	fs.FailNext("chat.postMessage", 0, -1, "channel_not_found")
	_, err = s.PostCard(context.Background(), "C1", testCard(store.Pending, nil))
	if !errors.Is(err, commands.ErrNotInChannel) {
		t.Errorf("channel_not_found: %v, want ErrNotInChannel", err)
	}
	fs.FailNext("chat.postMessage", 0, -1, "internal_error")
	_, err = s.PostCard(context.Background(), "C1", testCard(store.Pending, nil))
	if err == nil || errors.Is(err, commands.ErrNotInChannel) || strings.Contains(err.Error(), fs.BotToken()) {
		t.Errorf("internal_error: %v", err)
	}
}

// TestSlackRateLimited: a 429 with Retry-After is waited out and retried;
// the wait is bounded by ctx.
func TestSlackRateLimited(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	s := NewSlack(newAPI(fs), zerolog.Nop())
	msg := commands.Message{Spans: []commands.Span{{Text: "hello"}}}

	root, err := s.PostCard(context.Background(), "C1", testCard(store.Pending, nil))
	if err != nil {
		t.Fatal(err)
	}
	fs.FailNext("chat.postMessage", 429, 1, "")
	start := time.Now()
	if err := s.Reply(context.Background(), "C1", root, msg); err != nil {
		t.Fatalf("Reply after one 429: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %s, before Retry-After (1s)", d)
	}
	calls := fs.Calls("chat.postMessage")
	if len(calls) != 3 || calls[2].Form.Get("thread_ts") != root || len(fs.Thread("C1", root)) == 0 {
		t.Errorf("calls = %d, want card + 429 + retry with thread_ts", len(calls))
	}

	fs.FailNext("chat.postEphemeral", 429, 30, "")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = s.Ephemeral(ctx, "C1", "U1", msg)
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || time.Since(start) > 5*time.Second {
		t.Errorf("Ephemeral with Retry-After beyond ctx: %v after %s, want a prompt RateLimitedError", err, time.Since(start))
	}
}

// TestSlackThreadLinks: Thread spans link to the thread's permalink,
// fetched once and cached; an unknown thread falls back to its label.
func TestSlackThreadLinks(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{})
	api := newAPI(fs)
	s := NewSlack(api, zerolog.Nop())
	ctx := context.Background()
	ts, err := s.PostCard(ctx, "C1", testCard(store.Pending, nil))
	if err != nil {
		t.Fatal(err)
	}
	m := commands.Message{Spans: []commands.Span{{Text: "see "}, {Kind: commands.Thread, Text: "r-7", Channel: "C1", TS: ts},
		{Text: " and "}, {Kind: commands.Thread, Text: "r-<6>", Channel: "C1", TS: "9.9"}}}
	for range 2 {
		if err := s.Ephemeral(ctx, "C1", "U1", m); err != nil {
			t.Fatal(err)
		}
	}
	es := fs.Ephemerals("U1")
	if len(es) != 2 {
		t.Fatalf("%d ephemerals, want 2", len(es))
	}
	want := "<" + strings.ReplaceAll(fakeslack.Permalink("C1", ts), "&", "&amp;") + "|r-7>"
	if !strings.Contains(es[1].AllText(), want) || !strings.Contains(es[1].AllText(), "and r-&lt;6&gt;") {
		t.Errorf("ephemeral text lacks %q or the escaped fallback label:\n%s", want, es[1].AllText())
	}
	if n := len(fs.Calls("chat.getPermalink")); n != 3 {
		t.Errorf("chat.getPermalink called %d times, want 3 (1 cached hit + 2 misses)", n)
	}
}

func TestSlackGroupMembers(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{UserGroups: map[string][]string{"S1": {"U1", "W2"}}})
	s := NewSlack(newAPI(fs), zerolog.Nop())
	got, err := s.GroupMembers(context.Background(), "S1")
	if err != nil || strings.Join(got, ",") != "U1,W2" {
		t.Errorf("GroupMembers(S1) = %v, %v", got, err)
	}
	if _, err := s.GroupMembers(context.Background(), "S404"); err == nil || !strings.Contains(err.Error(), "S404") {
		t.Errorf("unknown group: %v", err)
	}
}

// TestSlackResponseURLNotLogged: when the fallback post to a response_url
// fails, neither the log nor the error repeats the URL, a capability to
// post into the channel.
func TestSlackResponseURLNotLogged(t *testing.T) {
	fs := fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	const secret = "T0SECRET/B0SECRET/s3cr3tHookPathXyz"
	var logs syncbuf.Buffer
	s := NewSlack(newAPI(fs), zerolog.New(&logs))
	ctx := withResponseURL(context.Background(), "C9", "U1", "http://"+refused+"/actions/"+secret)
	err = s.Ephemeral(ctx, "C9", "U1", commands.Message{Spans: []commands.Span{{Text: "hi"}}})
	if err == nil {
		t.Fatal("ephemeral to a refused response_url succeeded")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the cause is lost: %v", err)
	}
	for what, text := range map[string]string{"error": err.Error(), "log": logs.String()} {
		if strings.Contains(text, "s3cr3tHookPath") {
			t.Errorf("%s holds the response_url: %s", what, text)
		}
	}
	if !strings.Contains(logs.String(), "ephemeral message not delivered") {
		t.Errorf("the failure was not logged: %s", logs.String())
	}
}
