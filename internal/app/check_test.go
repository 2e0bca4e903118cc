package app

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
)

// TestCheckPermissions: `bot check` reads the roles claim of the token Azure
// AD issues and fails, naming the missing application permission and the
// fix, when one is missing; a token it cannot read is a warning, not a
// failure; no secret or token ever reaches the output.
func TestCheckPermissions(t *testing.T) {
	tests := []struct {
		name    string
		tokens  fakemde.TokenOptions
		wantErr bool
		want    []string // regexps the output must match
		lacks   []string // regexps it must not match
	}{
		{name: "both roles", tokens: fakemde.TokenOptions{},
			want:  []string{`(?m)^ok   azure token: .*Machine\.Isolate`, `(?m)^ok   mde read:`},
			lacks: []string{`(?m)^(FAIL|WARN) `}},
		{name: "read-write instead of read", tokens: fakemde.TokenOptions{Roles: []string{defender.RoleIsolate, defender.RoleReadWrite}},
			want: []string{`(?m)^ok   azure token:`}, lacks: []string{`(?m)^(FAIL|WARN) `}},
		{name: "isolate missing", tokens: fakemde.TokenOptions{Roles: []string{defender.RoleRead}}, wantErr: true,
			want: []string{`(?m)^FAIL azure token: .*lacks the application permission Machine\.Isolate .*WindowsDefenderATP.*admin consent`,
				`(?m)^ok   mde read:`},
			lacks: []string{`permission Machine\.Isolate and`}},
		{name: "no roles", tokens: fakemde.TokenOptions{Roles: []string{}}, wantErr: true,
			want: []string{`(?m)^FAIL azure token: .*permissions Machine\.Isolate and Machine\.Read\.All .*roles: none.*admin consent`}},
		{name: "not a JWT", tokens: fakemde.TokenOptions{Opaque: true},
			want:  []string{`(?m)^WARN azure token: token issued .*cannot read roles from the access token: not a JWT`},
			lacks: []string{`(?m)^FAIL `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.mde.SetTokens(tt.tokens)
			var out bytes.Buffer
			err := Check(context.Background(), w.config(t, nil), w.options(), &out)
			text := out.String()
			t.Log("\n" + text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Check err = %v, want error: %v", err, tt.wantErr)
			}
			for _, re := range tt.want {
				if !regexp.MustCompile(re).MatchString(text) {
					t.Errorf("output does not match %s", re)
				}
			}
			for _, re := range tt.lacks {
				if regexp.MustCompile(re).MatchString(text) {
					t.Errorf("output matches %s", re)
				}
			}
			secrets := []string{fakemde.ClientSecret, w.fs.BotToken(), w.fs.AppToken()}
			issued := w.mde.IssuedTokens()
			if len(issued) == 0 {
				t.Fatal("no token was issued: the secret check would prove nothing")
			}
			for _, tok := range issued {
				secrets = append(secrets, tok)
				if parts := strings.Split(tok, "."); len(parts) == 3 {
					secrets = append(secrets, parts[1]) // the payload alone
				}
			}
			for _, s := range secrets {
				if strings.Contains(text, s) || strings.Contains(w.logs.String(), s) {
					t.Errorf("a secret or token (%.8s…) appears in the output or logs", s)
				}
			}
		})
	}
}
