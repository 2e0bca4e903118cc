package fakeslack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

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
