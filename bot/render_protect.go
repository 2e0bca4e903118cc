package bot

import (
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/store"
)

// protectionBlocks are a card's lines about who must approve: "protected"
// with the matching entry (escaped: tags are free text) while the machine
// is protected, and the approvals so far of a request that needs several.
func protectionBlocks(c commands.Card) []slack.Block {
	r := c.Request
	var lines []string
	if c.Protected != "" {
		// In code: host patterns hold '*', which mrkdwn would read as bold.
		lines = append(lines, fmt.Sprintf(":lock: *Protected machine* (%s): isolating it needs %d different approvers, neither the requester.",
			code(c.Protected), r.Required()))
	}
	if n := len(r.ApprovedBy); r.Required() > 1 && n > 0 {
		who := make([]string, n)
		for i, id := range r.ApprovedBy {
			who[i] = mention(id)
		}
		line := fmt.Sprintf(":ballot_box_with_check: Approvals: %d of %d (%s)", n, r.Required(), strings.Join(who, ", "))
		if left := r.Required() - n; r.State == store.Pending && left > 0 {
			line += fmt.Sprintf("; %d more needed from another approver", left)
		}
		lines = append(lines, line+".")
	}
	var out []slack.Block
	for _, l := range lines {
		out = append(out, slack.NewContextBlock("", mrkdwn(l, maxSectionText)))
	}
	return out
}
