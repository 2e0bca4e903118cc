package bot

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// maxMessageBlocks is Slack's limit of blocks in one message.
const maxMessageBlocks = 50

// listBlocks renders a Message's List: its lines escaped and packed, whole
// lines where they fit, into sections of at most maxSectionText
// characters, in at most room blocks; when they do not all fit, the last
// block says how many lines were left out. A line longer than a section is
// cut (commands wraps its long lines well under that).
func listBlocks(lines []string, room int) []slack.Block {
	if len(lines) == 0 || room < 1 {
		return nil
	}
	var out []slack.Block
	var sec strings.Builder
	flush := func() {
		if sec.Len() > 0 {
			out = append(out, slack.NewSectionBlock(mrkdwn(sec.String(), maxSectionText), nil, nil))
			sec.Reset()
		}
	}
	for i, l := range lines {
		l = truncate(esc(l), maxSectionText)
		if sec.Len() > 0 && utf8.RuneCountInString(sec.String())+1+utf8.RuneCountInString(l) > maxSectionText {
			flush()
		}
		if len(out) == room-1 && sec.Len() == 0 && i > 0 {
			// The last block left: say what does not fit.
			out = append(out, slack.NewContextBlock("", mrkdwn(fmt.Sprintf("…and %d more lines not shown; the audit log has every machine.", len(lines)-i), maxSectionText)))
			return out
		}
		if sec.Len() > 0 {
			sec.WriteByte('\n')
		}
		sec.WriteString(l)
	}
	flush()
	return out
}
