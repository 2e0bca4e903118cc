package commands

import (
	"regexp"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Outcome is where r's MDE action a stands, in plain words, for the card
// and the thread alike: its status while MDE works on it, then the
// outcome ("`web-01` isolated (Full) at 10:42 UTC", "Isolation failed:
// <MDE's error fields>", timed out, cancelled by whom), or why the
// following stopped. Transports render the spans (escaping them).
func Outcome(r store.Request, a *defender.MachineAction) []Span {
	if a == nil {
		return nil
	}
	host := code(actionHost(r, *a))
	noun := "Isolation"
	if r.Command == store.Unisolate {
		noun = "Release"
	}
	at := a.LastUpdateDateTimeUTC
	switch a.Status {
	case defender.StatusSucceeded:
		if r.Command == store.Unisolate {
			return []Span{host, txt(" released from isolation at " + hhmm(at))}
		}
		typ := r.IsolationType
		if typ == "" {
			typ = a.Scope
		}
		if typ == "" {
			typ = string(defender.Full)
		}
		return []Span{host, txtf(" isolated (%s) at %s", typ, hhmm(at))}
	case defender.StatusFailed:
		why := a.ErrorDetails()
		if why == "" {
			why = "MDE gave no reason; see the action in the MDE portal (Action center)"
		}
		return []Span{txt(noun + " failed: " + why)}
	case defender.StatusTimeOut:
		return []Span{txt(noun + " timed out: MDE could not complete it on "), host, txt(" in time")}
	case defender.StatusCancelled:
		return append([]Span{txt(noun + " cancelled by ")}, cancelledBy(*a))
	}
	if r.State.Terminal() {
		return []Span{txt("Stopped following MDE action "), code(a.ID), txt(": it is still "), bold(a.Status), txt(". Check "), code(UsageStatus), txt(" or the MDE portal.")}
	}
	return []Span{txt("MDE action "), code(a.ID), txt(" is "), bold(a.Status)}
}

// actionHost names the machine of an action.
func actionHost(r store.Request, a defender.MachineAction) string {
	switch {
	case r.HostName != "":
		return r.HostName
	case a.ComputerDNSName != "":
		return a.ComputerDNSName
	case r.MachineID != "":
		return r.MachineID
	}
	return a.MachineID
}

// cancelledByUs finds the Slack user named in a cancellation comment the
// bot wrote ("Cancelled by @alice (U0ALICE) via Slack [isolate-bot r-7]").
var cancelledByUs = regexp.MustCompile(`\(([UW][A-Z0-9]{2,})\).*\[isolate-bot `)

// cancelledBy is who cancelled a: the person when the bot cancelled it for
// them (MDE records the app as cancellationRequestor), else MDE's
// cancellationRequestor.
func cancelledBy(a defender.MachineAction) Span {
	if m := cancelledByUs.FindStringSubmatch(a.CancellationComment); m != nil {
		return who(m[1])
	}
	if a.CancellationRequestor != "" {
		return txt(a.CancellationRequestor)
	}
	return txt("someone in MDE")
}
