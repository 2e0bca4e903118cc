package deploy_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/commands"
)

// minimalScopes is every bot scope the code may need: the three it uses
// plus users:read, allowed only if the bot ever calls users.info. The
// manifest must ask for no more (least privilege).
var minimalScopes = []string{"commands", "chat:write", "usergroups:read", "users:read"}

// slackManifest is the subset of the Slack app manifest the test checks.
type slackManifest struct {
	Features struct {
		SlashCommands []struct {
			Command      string `json:"command"`
			Description  string `json:"description"`
			UsageHint    string `json:"usage_hint"`
			ShouldEscape *bool  `json:"should_escape"`
			URL          string `json:"url"`
		} `json:"slash_commands"`
		BotUser struct {
			DisplayName string `json:"display_name"`
		} `json:"bot_user"`
	} `json:"features"`
	OAuthConfig struct {
		Scopes struct {
			Bot  []string `json:"bot"`
			User []string `json:"user"`
		} `json:"scopes"`
		RedirectURLs []string `json:"redirect_urls"`
	} `json:"oauth_config"`
	Settings struct {
		Interactivity struct {
			IsEnabled  bool   `json:"is_enabled"`
			RequestURL string `json:"request_url"`
		} `json:"interactivity"`
		SocketModeEnabled  bool `json:"socket_mode_enabled"`
		EventSubscriptions any  `json:"event_subscriptions"`
	} `json:"settings"`
}

// TestSlackManifest: the manifest declares exactly the commands the bot
// registers, asks only for the scopes the code uses, and runs in Socket
// Mode with interactivity.
func TestSlackManifest(t *testing.T) {
	var m slackManifest
	unmarshal(t, docs(t, "slack-app-manifest.yaml")[0], &m)

	var cmds []string
	hints := map[string]string{}
	for _, c := range m.Features.SlashCommands {
		cmds = append(cmds, c.Command)
		hints[c.Command] = c.UsageHint
		if c.ShouldEscape == nil || *c.ShouldEscape {
			t.Errorf("%s: should_escape must be false (the bot escapes itself)", c.Command)
		}
		if c.URL != "" {
			t.Errorf("%s has a request URL; Socket Mode needs none", c.Command)
		}
		if c.Description == "" {
			t.Errorf("%s has no description", c.Command)
		}
	}
	if !slices.Equal(cmds, bot.SlashCommands) {
		t.Errorf("manifest commands = %v, bot.SlashCommands = %v", cmds, bot.SlashCommands)
	}
	// Every form the parser's usage lines name appears in the hint Slack
	// shows while typing, so no subcommand is hidden from the analyst.
	for _, usage := range []string{commands.UsageIsolate, commands.UsageUnisolate, commands.UsageStatus, commands.UsageCancel} {
		cmd, args, _ := strings.Cut(usage, " ")
		sub, _, _ := strings.Cut(args, " ")
		if strings.HasPrefix(sub, "<") {
			sub = "<machine>"
		}
		if !strings.Contains(hints[cmd], sub) {
			t.Errorf("%s usage_hint %q does not show %q (from %q)", cmd, hints[cmd], sub, usage)
		}
	}
	if !strings.Contains(hints["/isolate"], "full|selective|unmanaged") || !strings.Contains(hints["/isolate"], "help") {
		t.Errorf("/isolate usage_hint %q lacks the isolation types or help", hints["/isolate"])
	}

	scopes := m.OAuthConfig.Scopes.Bot
	for _, s := range scopes {
		if !slices.Contains(minimalScopes, s) {
			t.Errorf("bot scope %q is outside the minimal set %v", s, minimalScopes)
		}
	}
	got, want := slices.Clone(scopes), slices.Clone(bot.BotScopes)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("manifest bot scopes = %v, bot.BotScopes = %v", got, want)
	}
	if len(m.OAuthConfig.Scopes.User) > 0 {
		t.Errorf("user scopes %v requested; the bot acts only as itself", m.OAuthConfig.Scopes.User)
	}
	if !m.Settings.SocketModeEnabled {
		t.Error("socket_mode_enabled is not true")
	}
	if !m.Settings.Interactivity.IsEnabled || m.Settings.Interactivity.RequestURL != "" {
		t.Error("interactivity must be enabled, without a request URL (Socket Mode)")
	}
	if m.Settings.EventSubscriptions != nil {
		t.Error("event subscriptions declared; the bot handles none")
	}
}
