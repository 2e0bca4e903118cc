package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/safetext"
	"github.com/soc/isolate-bot/store"
)

// How the console draws cards and messages: plain text, every user-given
// string made visible and harmless (clean).

// card renders a request card; buttons only while pending.
func (c *Console) card(card commands.Card, updated bool) string {
	r := card.Request
	var b strings.Builder
	head := "┌ "
	if updated {
		head = "┌ (updated) "
	}
	what := string(r.Command)
	if r.IsolationType != "" {
		what += " (" + r.IsolationType + ")"
	}
	fmt.Fprintf(&b, "%s%s: %s %s, requested by @%s\n", head, r.ID, clean(what), clean(orDash(r.HostName)), c.name(r.Requester))
	m := card.Machine
	if bc := card.Bulk; bc != nil {
		c.bulkLines(&b, r, bc)
	} else {
		c.machineLine(&b, r, m)
	}
	if r.Comment != "" {
		fmt.Fprintf(&b, "│ comment: %s\n", indentLines(clean(r.Comment), "│   "))
	}
	approvers := make([]string, len(card.Approvers))
	for i, a := range card.Approvers {
		approvers[i] = "@" + c.name(a)
	}
	if len(approvers) > 0 {
		fmt.Fprintf(&b, "│ approvers: %s\n", strings.Join(approvers, ", "))
	}
	switch {
	case r.State == "pending":
		if !r.ExpiresAt.IsZero() {
			fmt.Fprintf(&b, "│ expires %s\n", r.ExpiresAt.UTC().Format(time.TimeOnly+" UTC"))
		}
		fmt.Fprintf(&b, "└ [approve %s] [deny %s]\n", r.ID, r.ID)
	default:
		fmt.Fprintf(&b, "└ %s", r.State)
		if r.DecidedBy != "" {
			fmt.Fprintf(&b, " by @%s", c.name(r.DecidedBy))
		}
		if !r.DecidedAt.IsZero() {
			fmt.Fprintf(&b, " at %s", r.DecidedAt.UTC().Format(time.TimeOnly+" UTC"))
		}
		if r.Note != "" {
			fmt.Fprintf(&b, ": %s", clean(r.Note))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// message renders m after prefix; continuation lines get indent.
func (c *Console) message(prefix, indent string, m commands.Message) string {
	var s strings.Builder
	for _, sp := range m.Spans {
		switch sp.Kind {
		case commands.Bold:
			s.WriteString("*" + clean(sp.Text) + "*")
		case commands.Code:
			s.WriteString("`" + clean(sp.Text) + "`")
		case commands.User:
			s.WriteString("@" + c.name(sp.Text))
		case commands.Thread:
			label := clean(sp.Text)
			if id := c.threads[sp.TS]; id != "" {
				label += " (" + id + ")"
			}
			s.WriteString(label)
		default:
			s.WriteString(clean(sp.Text))
		}
	}
	var b strings.Builder
	b.WriteString(prefix + indentLines(s.String(), indent) + "\n")
	if a := m.Action; a != nil {
		b.WriteString(indent + actionLine(*a) + "\n")
	}
	for _, l := range m.List {
		b.WriteString(indent + clean(l) + "\n")
	}
	for _, mc := range m.Machines {
		fmt.Fprintf(&b, "%s• %s  %s  %s", indent, clean(mc.ComputerDNSName), clean(mc.ID), clean(orDash(mc.OSPlatform)))
		if mc.LastSeen != nil {
			fmt.Fprintf(&b, "  last seen %s", mc.LastSeen.UTC().Format(time.DateTime+" UTC"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// actionLine is one MachineAction: id, type, scope, machine and status.
func actionLine(a defender.MachineAction) string {
	s := "MachineAction " + clean(a.ID) + " " + clean(a.Type)
	if a.Scope != "" {
		s += " " + clean(a.Scope)
	}
	s += " on " + clean(orDash(a.ComputerDNSName)) + ": " + clean(a.Status)
	if !a.CreationDateTimeUTC.IsZero() {
		s += " (created " + a.CreationDateTimeUTC.UTC().Format(time.TimeOnly+" UTC") + ")"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean makes untrusted text safe for a terminal: control characters
// (which could move the cursor or recolour the screen), bidi controls and
// zero-width characters become U+FFFD, as in Slack output; newlines and
// tabs stay.
func clean(s string) string { return safetext.Visible(s) }

func indentLines(s, indent string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+indent)
}

// machineLine is a single request's machine.
func (c *Console) machineLine(b *strings.Builder, r store.Request, m defender.Machine) {
	fmt.Fprintf(b, "│ machine %s", clean(r.MachineID))
	if m.ID != "" {
		fmt.Fprintf(b, " · %s · health %s · risk %s · exposure %s", clean(orDash(m.OSPlatform)), clean(orDash(m.HealthStatus)), clean(orDash(m.RiskScore)), clean(orDash(m.ExposureLevel)))
		if m.LastSeen != nil {
			fmt.Fprintf(b, " · last seen %s", m.LastSeen.UTC().Format(time.DateTime+" UTC"))
		}
	}
	b.WriteString("\n")
}

// bulkLines are an outbreak request's machines and, once its batch runs,
// its progress.
func (c *Console) bulkLines(b *strings.Builder, r store.Request, bc *commands.BulkCard) {
	names := make([]string, 0, len(bc.Preview))
	for _, m := range bc.Preview {
		names = append(names, clean(m.ComputerDNSName))
	}
	fmt.Fprintf(b, "│ machines: %d, listed in the thread", bc.Machines)
	if len(names) > 0 {
		fmt.Fprintf(b, " (%s…)", strings.Join(names, ", "))
	}
	b.WriteString("\n")
	if p := bc.Progress(r.Command, func(id string) string { return "@" + c.name(id) }); p != "" {
		fmt.Fprintf(b, "│ progress: %s\n", p)
	}
}
