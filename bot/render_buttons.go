package bot

import (
	"fmt"

	"github.com/slack-go/slack"
	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/store"
)

// The buttons of cards: what each offers now (commands.Card.Buttons).

// approveButton asks for confirmation (title, body, the confirming word)
// before an approval is sent: a mis-tap on a phone isolates nothing.
func approveButton(val, title, body, word string) *slack.ButtonBlockElement {
	confirm := slack.NewConfirmationBlockObject(plain(title, maxConfirmHead), plain(body, maxConfirmText),
		plain(word, 30), plain("Cancel", 30)).WithStyle(slack.StyleDanger)
	return slack.NewButtonBlockElement(ActionApprove, val, plain("Approve", maxButtonText)).
		WithStyle(slack.StylePrimary).WithConfirm(confirm)
}

func denyButton(val string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(ActionDeny, val, plain("Deny", maxButtonText)).WithStyle(slack.StyleDanger)
}

// buttons renders what the card offers now (Card.Buttons), each carrying
// the request id as its value.
func buttons(c commands.Card, hostTxt, val string) []slack.BlockElement {
	r := c.Request
	var els []slack.BlockElement
	for _, b := range c.Buttons {
		switch b {
		case commands.ButtonApprove:
			title := "Isolate " + hostTxt + "?"
			body := esc(or(r.IsolationType, "Full")) + " network isolation of " + hostTxt + " cuts its network traffic until someone releases it."
			confirmWord := "Isolate"
			if r.Command == store.Unisolate {
				title = "Release " + hostTxt + "?"
				body = "Release " + hostTxt + " from network isolation."
				confirmWord = "Release"
			}
			els = append(els, approveButton(val, title, body, confirmWord))
		case commands.ButtonDeny:
			els = append(els, denyButton(val))
		case commands.ButtonCancel:
			label := "Cancel isolation"
			if r.Command == store.Unisolate {
				label = "Cancel release"
			}
			confirm := slack.NewConfirmationBlockObject(plain(label+"?", maxConfirmHead),
				plain("Ask MDE to cancel its pending action on "+hostTxt+".", maxConfirmText), plain("Cancel it", 30), plain("Keep it", 30))
			els = append(els, slack.NewButtonBlockElement(ActionCancel, val, plain(label, maxButtonText)).WithConfirm(confirm))
		case commands.ButtonRelease:
			els = append(els, slack.NewButtonBlockElement(ActionRelease, val, plain("Release "+hostTxt, maxButtonText)))
		}
	}
	return els
}

func bulkButtons(c commands.Card, val string) []slack.BlockElement {
	var els []slack.BlockElement
	for _, b := range c.Buttons {
		switch b {
		case commands.ButtonApprove:
			title, body, word := fmt.Sprintf("Isolate %d machines?", c.Bulk.Machines), "Network isolation of every listed machine, sent at the rate limit's pace.", "Isolate"
			if c.Request.Command == store.Unisolate {
				title, body, word = fmt.Sprintf("Release %d machines?", c.Bulk.Machines), "Release every listed machine from isolation, sent at the rate limit's pace.", "Release"
			}
			els = append(els, approveButton(val, title, body, word))
		case commands.ButtonDeny:
			els = append(els, denyButton(val))
		case commands.ButtonStop:
			els = append(els, slack.NewButtonBlockElement(ActionStop, val, plain("Stop the batch", maxButtonText)).WithStyle(slack.StyleDanger))
		}
	}
	return els
}
