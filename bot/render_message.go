package bot

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
)

// Messages (thread replies and private answers): their spans, the MDE
// action, candidate machines and long lists.

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

// Message renders m: its spans as one mrkdwn section, then the machine
// action as fields and the candidate machines as a list.
func (rd Renderer) Message(m commands.Message) ([]slack.Block, string) {
	var b strings.Builder
	for _, s := range m.Spans {
		b.WriteString(rd.span(s))
	}
	text := b.String()
	var blocks []slack.Block
	if strings.TrimSpace(text) != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(text, maxSectionText), nil, nil))
	}
	if a := m.Action; a != nil {
		created := "unknown"
		if !a.CreationDateTimeUTC.IsZero() {
			created = a.CreationDateTimeUTC.UTC().Format("2006-01-02 15:04:05") + " UTC"
		}
		machine := code(a.MachineID)
		if a.ComputerDNSName != "" {
			machine = code(a.ComputerDNSName) + " (" + code(a.MachineID) + ")"
		}
		fields := []*slack.TextBlockObject{
			field("*Action ID*\n" + code(a.ID)),
			field("*Type*\n" + esc(or(a.Type, "unknown"))),
			field("*Scope*\n" + esc(or(a.Scope, "—"))),
			field("*Status*\n" + esc(or(a.Status, "unknown"))),
			field("*Machine*\n" + machine),
			field("*Requestor comment*\n" + esc(or(a.RequestorComment, "—"))),
			field("*Created*\n" + created),
		}
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
		if text == "" {
			text = "MDE action " + esc(a.ID) + ": " + esc(a.Status)
		}
	}
	if len(m.List) > 0 {
		blocks = append(blocks, listBlocks(m.List, maxMessageBlocks-len(blocks))...)
		if text == "" {
			text = fmt.Sprintf("%d lines", len(m.List))
		}
	}
	if len(m.Machines) > 0 {
		// Whole lines only: a list cut mid-id would mislead.
		var l strings.Builder
		for i, mc := range m.Machines {
			line := candidate(mc) + "\n"
			if i == maxCandidates || utf8.RuneCountInString(l.String()+line) > maxSectionText-60 {
				fmt.Fprintf(&l, "…and %d more; use the machine id.\n", len(m.Machines)-i)
				break
			}
			l.WriteString(line)
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(strings.TrimRight(l.String(), "\n"), maxSectionText), nil, nil))
		if text == "" {
			text = fmt.Sprintf("%d machines match", len(m.Machines))
		}
	}
	if text == "" {
		text = " " // Slack requires a text fallback
	}
	return blocks, truncate(text, maxFallback)
}

func candidate(m defender.Machine) string {
	s := "• " + code(or(m.ComputerDNSName, "?")) + " " + code(m.ID) + " · " + esc(or(m.OSPlatform, "unknown OS")) +
		" · health " + esc(or(m.HealthStatus, "unknown"))
	if m.LastSeen != nil {
		s += " · last seen " + stamp(*m.LastSeen)
	}
	if m.IsPotentialDuplication {
		s += " · potential duplicate"
	}
	if m.MergedIntoMachineID != "" {
		s += " · merged into " + code(m.MergedIntoMachineID)
	}
	return s
}

func (rd Renderer) span(s commands.Span) string {
	switch s.Kind {
	case commands.Bold:
		if s.Text == "" {
			return ""
		}
		return boldEsc(s.Text)
	case commands.Code:
		if s.Text == "" {
			return ""
		}
		return code(s.Text)
	case commands.User:
		return mention(s.Text)
	case commands.Thread:
		label := esc(or(s.Text, s.TS))
		if rd.Permalink != nil {
			if link := rd.Permalink(s.Channel, s.TS); safeLink(link) {
				return "<" + esc(link) + "|" + label + ">"
			}
		}
		return label
	}
	return esc(s.Text)
}

// safeLink accepts only an http(s) permalink without characters that would
// end the link token early.
func safeLink(u string) bool {
	return (strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")) &&
		!strings.ContainsAny(u, "<>| \n\t")
}
