package fakeslack

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// TestWebAPI drives each Web API method through slack-go, one named case
// per group of methods, in order against one server.
func TestWebAPI(t *testing.T) {
	fs := New(t, Options{
		Channels:   []string{"C1"},
		UserGroups: map[string][]string{"S1": {"U1", "U2"}},
		Users:      map[string]User{"U1": {Name: "alice", RealName: "Alice", Email: "alice@example.com"}},
	})
	api := newAPI(fs)
	for _, c := range []struct {
		name string
		run  func(t *testing.T, fs *Server, api *slack.Client)
	}{
		{"auth.test with both tokens", webAPIAuthTest},
		{"post, thread, update, permalink", webAPIMessages},
		{"errors", webAPIErrors},
		{"users, groups, ephemeral", webAPIDirectory},
		{"429 with Retry-After", webAPIRateLimited},
		{"hang", webAPIHang},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, fs, api) })
	}
}

// webAPIAuthTest: auth.test answers for the bot and the app token, refuses
// any other, and never records the token.
func webAPIAuthTest(t *testing.T, fs *Server, api *slack.Client) {
	ctx := t.Context()
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
}

// webAPIMessages: messages and thread replies get increasing ts,
// chat.update keeps the previous version, and permalinks have Slack's
// shape.
func webAPIMessages(t *testing.T, fs *Server, api *slack.Client) {
	ctx := t.Context()
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
}

// webAPIErrors: each refusal comes back as the Slack error slack-go
// decodes.
func webAPIErrors(t *testing.T, fs *Server, api *slack.Client) {
	ctx := t.Context()
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
}

// webAPIDirectory: users.info, usergroups.users.list and
// chat.postEphemeral.
func webAPIDirectory(t *testing.T, fs *Server, api *slack.Client) {
	ctx := t.Context()
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
}

// webAPIRateLimited: FailNext with 429 gives slack-go's RateLimitedError
// (or a plain 429 without Retry-After), once.
func webAPIRateLimited(t *testing.T, fs *Server, api *slack.Client) {
	ctx := t.Context()
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
}

// webAPIHang: Hang delays answers until a client gives up; Hang(0) ends it.
func webAPIHang(t *testing.T, fs *Server, api *slack.Client) {
	ctx := t.Context()
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
