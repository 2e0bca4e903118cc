package bot

import (
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackutilsx"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/safetext"
	"github.com/soc/isolate-bot/store"
)

// Action ids of the card's buttons and the block id prefix of its actions
// block. Runner routes clicks by these.
const (
	ActionApprove  = "isolate_approve"
	ActionDeny     = "isolate_deny"
	ActionCancel   = "isolate_cancel"  // cancel the request's pending MDE action
	ActionRelease  = "isolate_release" // request the release of an isolated machine
	BlockIDPrefix  = "req:"
	maxSectionText = 3000
	maxField       = 2000
	maxFields      = 10
	maxButtonText  = 75
	maxConfirmHead = 100
	maxConfirmText = 300
	maxHeader      = 150
	maxID          = 255
	maxValue       = 2000
	maxCandidates  = 20 // machines listed for an ambiguous host name
	maxFallback    = 3000
)

var (
	userIDRe  = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupIDRe = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
)

// Renderer turns transport-neutral cards and messages into Block Kit. It is
// pure: the only outside information it uses is Permalink.
type Renderer struct {
	// Permalink returns the permalink of the message channel/ts, or "" when
	// it is unknown (the Thread span then renders as its plain label). Nil
	// means always unknown.
	Permalink func(channel, ts string) string
}

// esc makes user text safe for mrkdwn and plain_text: invisible and
// reordering characters become visible (safetext), then
// slackutilsx.EscapeMessage (&, <, >), so no user string can form a
// mention, link or special token, nor hide or reverse what it says.
func esc(s string) string { return slackutilsx.EscapeMessage(safetext.Visible(s)) }

// unesc reverses esc; used on button values, which Slack echoes back as sent.
func unesc(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return html.UnescapeString(s)
}

// mention renders a Slack user or group id as a mention token, and anything
// else (including "system") as escaped text, so a forged id cannot inject.
func mention(id string) string {
	switch {
	case userIDRe.MatchString(id):
		return "<@" + id + ">"
	case groupIDRe.MatchString(id):
		return "<!subteam^" + id + ">"
	case id == "":
		return "unknown"
	}
	return esc(id)
}

// truncate shortens already rendered mrkdwn/plain text to at most max
// characters, ending in "…". It never cuts inside an &entity; or a <token>,
// so truncation cannot produce a raw '<' or a broken escape.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	// Byte offset of the rune at index max-1 (room for the ellipsis).
	cut, n := 0, 0
	for i := range s {
		if n == max-1 {
			cut = i
			break
		}
		n++
	}
	head := s[:cut]
	if lt := strings.LastIndexByte(head, '<'); lt > strings.LastIndexByte(head, '>') {
		head = head[:lt]
	}
	if amp := strings.LastIndexByte(head, '&'); amp >= 0 && amp > strings.LastIndexByte(head, ';') {
		head = head[:amp]
	}
	return head + "…"
}

// safeID makes a block/action id or button value from a request id: escaped
// (values come back escaped and are unescaped on click) and bounded.
func safeID(s string, max int) string {
	e := esc(s)
	if len(e) > max {
		return "" // caller treats as unusable; real ids are "r-<n>"
	}
	return e
}

func mrkdwn(s string, max int) *slack.TextBlockObject {
	if s == "" {
		s = " "
	}
	return slack.NewTextBlockObject(slack.MarkdownType, truncate(s, max), false, true)
}

func plain(s string, max int) *slack.TextBlockObject {
	if s == "" {
		s = " "
	}
	return slack.NewTextBlockObject(slack.PlainTextType, truncate(s, max), false, false)
}

func or(s, dflt string) string {
	if strings.TrimSpace(s) == "" {
		return dflt
	}
	return s
}

func hhmm(t time.Time) string               { return t.UTC().Format("15:04") + " UTC" }
func stamp(t time.Time) string              { return t.UTC().Format("2006-01-02 15:04") + " UTC" }
func code(s string) string                  { return "`" + esc(strings.ReplaceAll(s, "`", "'")) + "`" }
func boldEsc(s string) string               { return "*" + esc(s) + "*" }
func field(s string) *slack.TextBlockObject { return mrkdwn(s, maxField) }

// quote renders untrusted multi-line text as a mrkdwn block quote. The quote
// marker is the escaped "&gt;", which Slack renders as a quote, so the
// output contains no raw '>' of ours either.
func quote(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r", ""))
	if s == "" {
		return "&gt; _(no comment)_"
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "&gt; " + esc(l)
	}
	return strings.Join(lines, "\n")
}

func verb(r store.Request) (verb, noun string) {
	if r.Command == store.Unisolate {
		return "release", "Release from isolation"
	}
	return "isolate", "Isolation"
}

// Card renders a request card: blocks plus the plain notification text.
// Buttons appear only while the request is pending.
func (rd Renderer) Card(c commands.Card) ([]slack.Block, string) {
	if c.Bulk != nil {
		return rd.bulkCard(c) // outbreak mode: render_bulk.go
	}
	r, m := c.Request, c.Machine
	v, noun := verb(r)
	host := or(r.HostName, m.ComputerDNSName)
	typ := ""
	if r.Command != store.Unisolate {
		typ = " (" + esc(or(r.IsolationType, "Full")) + " isolation)"
	}

	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(noun+" request "+esc(r.ID), maxHeader)),
		slack.NewSectionBlock(mrkdwn(fmt.Sprintf("%s asks to *%s* %s%s.\n%s",
			mention(r.Requester), v, code(or(host, r.MachineID)), typ, quote(r.Comment)), maxSectionText), nil, nil),
	}

	osTxt := esc(or(m.OSPlatform, "unknown"))
	if m.OSBuild != nil {
		osTxt += " build " + strconv.FormatInt(*m.OSBuild, 10)
	} else if m.Version != "" {
		osTxt += " " + esc(m.Version)
	}
	lastSeen := "unknown"
	if m.LastSeen != nil {
		lastSeen = stamp(*m.LastSeen)
	}
	approvers := make([]string, 0, len(c.Approvers))
	for _, a := range c.Approvers {
		approvers = append(approvers, mention(a))
	}
	fields := []*slack.TextBlockObject{
		field("*Machine ID*\n" + code(or(r.MachineID, m.ID))),
		field("*Host name*\n" + code(or(host, "unknown"))),
		field("*OS*\n" + osTxt),
		field("*Health*\n" + esc(or(m.HealthStatus, "unknown"))),
		field("*Risk score*\n" + esc(or(m.RiskScore, "unknown"))),
		field("*Exposure level*\n" + esc(or(m.ExposureLevel, "unknown"))),
		field("*Last seen*\n" + lastSeen),
		field("*Request*\n" + code(r.ID)),
		field("*May approve*\n" + or(strings.Join(approvers, ", "), "nobody configured")),
		field("*Expires*\n" + stamp(r.ExpiresAt)),
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields[:min(len(fields), maxFields)], nil))
	blocks = append(blocks, protectionBlocks(c)...)

	if r.Command != store.Unisolate {
		blocks = append(blocks, slack.NewContextBlock("",
			mrkdwn(":warning: Isolation stays until someone releases it (/unisolate). An offline machine is retried for up to 3 days, then MDE gives up.", maxSectionText)))
	}

	if line := rd.outcome(c); r.State != store.Pending && line != "" {
		blocks = append(blocks, slack.NewContextBlock("", mrkdwn(line, maxSectionText)))
	}
	bid := safeID(BlockIDPrefix+r.ID, maxID)
	val := safeID(r.ID, maxValue)
	if els := buttons(c, esc(or(host, r.MachineID)), val); len(els) > 0 && bid != "" && val != "" {
		blocks = append(blocks, slack.NewActionBlock(bid, els...))
	}

	text := fmt.Sprintf("%s request %s: %s asks to %s %s%s — %s", noun, esc(r.ID), mention(r.Requester), v,
		esc(or(host, r.MachineID)), typ, stateWord(r.State))
	return blocks, truncate(text, maxFallback)
}

func stateWord(s store.State) string {
	if s == "" {
		return "pending"
	}
	return esc(string(s))
}

// outcome is the context line of a decided card: once MDE has the
// action, where it stands (commands.Outcome's words, as in the thread)
// after who approved it.
func (rd Renderer) outcome(c commands.Card) string {
	r := c.Request
	if a := c.Action; a != nil && (r.State == store.Executing || r.State == store.Done || r.State == store.Failed) {
		var b strings.Builder
		for _, s := range commands.Outcome(r, a) {
			b.WriteString(rd.span(s))
		}
		at := ""
		if !r.DecidedAt.IsZero() {
			at = " at " + hhmm(r.DecidedAt)
		}
		return actionIcon(r, *a) + " " + b.String() + " · Approved by " + mention(r.DecidedBy) + at + " · MDE action " + code(a.ID)
	}
	by := mention(r.DecidedBy)
	at := ""
	if !r.DecidedAt.IsZero() {
		at = " at " + hhmm(r.DecidedAt)
	}
	note := ""
	if r.Note != "" {
		note = ": " + esc(r.Note)
	}
	action := ""
	if r.MachineActionID != "" {
		action = " · MDE action " + code(r.MachineActionID)
	}
	switch r.State {
	case store.Approved:
		s := ":white_check_mark: Approved by " + by + at
		if !r.RunAt.IsZero() {
			s += " · MDE call queued for " + r.RunAt.UTC().Format("15:04:05") + " UTC"
		}
		return s
	case store.Executing:
		return ":hourglass_flowing_sand: Approved by " + by + at + " · sent to MDE" + action
	case store.Done:
		return ":white_check_mark: Approved by " + by + at + " · Done" + action
	case store.Failed:
		return ":x: Approved by " + by + at + " · Failed" + note + action
	case store.Denied:
		return ":no_entry: Denied by " + by + at + note
	case store.Expired:
		if r.DecidedAt.IsZero() {
			at = " at " + hhmm(r.ExpiresAt)
		}
		return ":hourglass: Expired" + at + " without a decision"
	case store.Cancelled:
		return ":heavy_multiplication_x: Cancelled by " + by + at + note
	}
	return ""
}

// actionIcon marks where an MDE action stands.
func actionIcon(r store.Request, a defender.MachineAction) string {
	switch a.Status {
	case defender.StatusSucceeded:
		return ":white_check_mark:"
	case defender.StatusFailed, defender.StatusTimeOut:
		return ":x:"
	case defender.StatusCancelled:
		return ":heavy_multiplication_x:"
	}
	if r.State.Terminal() {
		return ":grey_question:" // no longer followed
	}
	return ":hourglass_flowing_sand:"
}
