package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/soc/isolate-bot/store"
)

// Span constructors keep message building readable.
func txt(s string) Span { return Span{Kind: Text, Text: s} }
func txtf(format string, args ...any) Span {
	return Span{Kind: Text, Text: fmt.Sprintf(format, args...)}
}
func bold(s string) Span { return Span{Kind: Bold, Text: s} }
func code(s string) Span { return Span{Kind: Code, Text: s} }

// who renders an actor: a mention for Slack ids, plain text for "system".
func who(id string) Span {
	if id == "" || id == systemActor {
		return Span{Kind: Text, Text: "isolate-bot"}
	}
	return Span{Kind: User, Text: id}
}

func threadLink(r store.Request, label string) Span {
	return Span{Kind: Thread, Text: label, Channel: r.Channel, TS: r.MessageTS}
}

func msg(spans ...Span) Message { return Message{Spans: spans} }

// systemActor is the actor of decisions the bot takes by itself.
const systemActor = "system"

func hhmm(t time.Time) string   { return t.UTC().Format("15:04 UTC") }
func hhmmss(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }

// helpMessage lists the commands.
func helpMessage(version string) Message {
	v := ""
	if version != "" {
		v = " " + version
	}
	return msg(
		bold("isolate-bot"+v), txt(" isolates a machine through Microsoft Defender for Endpoint after a second person approves.\n"),
		code(UsageIsolate), txt(" — request isolation (full, selective, or unmanaged for a device MDE does not manage).\n"),
		code(UsageUnisolate), txt(" — request release from isolation.\n"),
		code(UsageStatus), txt(" — isolation state and the latest request.\n"),
		code(UsageCancel), txt(" — withdraw a pending request, or cancel its MDE action while that is still Pending or InProgress (requester or approver; also the card's Cancel button).\n"),
		txt("<machine> is the 40-character MDE machine id or the host name. An isolation stays until someone releases it (/unisolate); MDE retries an offline machine for up to 3 days."),
	)
}

// usageMessage explains a parse error.
func usageMessage(e *UsageError) Message {
	return msg(txt(e.Problem+"\nUsage: "), code(e.Usage))
}

// openRequestMessage says the machine already has an open request.
func openRequestMessage(r store.Request) Message {
	m := msg(
		code(hostOrID(r)), txt(" already has request "), code(r.ID),
		txtf(" (%s, by ", r.State), who(r.Requester), txt("); see "),
	)
	if r.MessageTS != "" {
		m.Spans = append(m.Spans, threadLink(r, "its card"))
	} else {
		m.Spans = append(m.Spans, code(UsageStatus))
	}
	m.Spans = append(m.Spans, txt("."))
	return m
}

// decidedMessage explains why a request is no longer pending.
func decidedMessage(r store.Request) Message {
	at := ""
	if !r.DecidedAt.IsZero() {
		at = " at " + hhmm(r.DecidedAt)
	}
	switch r.State {
	case store.Approved, store.Executing, store.Done, store.Failed:
		m := msg(txt("Request "), code(r.ID), txt(" was already approved by "), who(r.DecidedBy), txt(at))
		if r.State != store.Approved {
			m.Spans = append(m.Spans, txtf(" and is now %s", r.State))
		}
		m.Spans = append(m.Spans, txt("."))
		return m
	case store.Denied:
		return msg(txt("Request "), code(r.ID), txt(" was already denied by "), who(r.DecidedBy), txt(at+"."))
	case store.Expired:
		return msg(txt("Request "), code(r.ID), txtf(" expired at %s without a decision; request again if still needed.", hhmm(r.ExpiresAt)))
	case store.Cancelled:
		m := msg(txt("Request "), code(r.ID), txt(" was cancelled by "), who(r.DecidedBy), txt(at))
		if r.Note != "" {
			m.Spans = append(m.Spans, txtf(" (%s)", r.Note))
		}
		m.Spans = append(m.Spans, txt("."))
		return m
	}
	return msg(txt("Request "), code(r.ID), txtf(" is %s.", r.State))
}

// commandVerb is the human verb of a request's command.
func commandVerb(c store.Command) string {
	if c == store.Unisolate {
		return "release from isolation"
	}
	return "isolation"
}

func joinApprovers(ids []string) []Span {
	var out []Span
	for i, id := range ids {
		if i > 0 {
			out = append(out, txt(", "))
		}
		out = append(out, who(id))
	}
	if len(out) == 0 {
		out = append(out, txt("(none configured)"))
	}
	return out
}

// plain keeps error text in one line for a Slack reply.
func plain(s string) string { return strings.Join(strings.Fields(s), " ") }

func hostOrID(r store.Request) string {
	if r.HostName != "" {
		return r.HostName
	}
	return r.MachineID
}
