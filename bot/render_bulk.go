package bot

import (
	"fmt"
	"strings"

	"github.com/slack-go/slack"
	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/store"
)

// ActionStop stops a running outbreak batch (commands.ButtonStop).
const ActionStop = "isolate_stop"

// bulkCard renders the card of a list or tag command (outbreak mode): the
// count, the first machines, the progress while its batch runs and the
// buttons valid now. The full list is in the thread.
func (rd Renderer) bulkCard(c commands.Card) ([]slack.Block, string) {
	r, bc := c.Request, c.Bulk
	noun, ask := "isolation", fmt.Sprintf("*isolate %d machines* (%s isolation)", bc.Machines, esc(or(r.IsolationType, "Full")))
	if r.Command == store.Unisolate {
		noun, ask = "release", fmt.Sprintf("*release %d machines* from isolation", bc.Machines)
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain("Outbreak "+noun+" request "+esc(r.ID), maxHeader)),
		slack.NewSectionBlock(mrkdwn(fmt.Sprintf("%s asks to %s.\n%s",
			mention(r.Requester), ask, quote(r.Comment)), maxSectionText), nil, nil),
	}
	if len(bc.Preview) > 0 {
		lines := make([]string, 0, len(bc.Preview)+1)
		for _, m := range bc.Preview {
			seen := "unknown"
			if m.LastSeen != nil {
				seen = stamp(*m.LastSeen)
			}
			lines = append(lines, fmt.Sprintf("• %s · %s · %s · last seen %s", code(or(m.ComputerDNSName, m.ID)),
				esc(or(m.OSPlatform, "unknown OS")), esc(or(m.HealthStatus, "unknown health")), seen))
		}
		if bc.Machines > len(bc.Preview) {
			lines = append(lines, fmt.Sprintf("… and %d more: the full list is in the thread.", bc.Machines-len(bc.Preview)))
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(strings.Join(lines, "\n"), maxSectionText), nil, nil))
	}
	blocks = append(blocks, protectionBlocks(c)...)
	needs := "one approver"
	if r.Required() > 1 {
		needs = fmt.Sprintf("%d different approvers", r.Required())
	}
	line := bulkState(c)
	if r.State == store.Pending { // what approval takes matters only until it is given
		line = fmt.Sprintf("Needs %s, not the requester · expires %s · %s", needs, stamp(r.ExpiresAt), line)
	}
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn(line, maxSectionText)))
	val := safeID(r.ID, maxValue)
	bid := safeID(BlockIDPrefix+r.ID, maxID)
	if els := bulkButtons(c, val); len(els) > 0 && bid != "" && val != "" {
		blocks = append(blocks, slack.NewActionBlock(bid, els...))
	}
	text := fmt.Sprintf("Outbreak %s request %s: %d machines — %s", noun, esc(r.ID), bc.Machines, stateWord(r.State))
	return blocks, truncate(text, maxFallback)
}

// bulkState is the request's state until its batch starts, then the
// batch's progress (commands.BulkCard.Progress).
func bulkState(c commands.Card) string {
	if c.Bulk.Batch == nil {
		return stateWord(c.Request.State)
	}
	// Progress holds numbers, times and fixed words; mention checks the id.
	return c.Bulk.Progress(c.Request.Command, mention)
}
