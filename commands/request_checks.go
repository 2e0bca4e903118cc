package commands

import (
	"context"
	"errors"
	"strings"

	"github.com/soc/isolate-bot/defender"
)

// checkType refuses, before any card, an isolation type machine m cannot
// take, saying which type works (defender.CheckIsolationType: the rule
// the simulator applies too). It returns false after refusing.
func (s *Service) checkType(ctx context.Context, inv Invocation, p Parsed, m defender.Machine) bool {
	if p.Op != OpIsolate {
		return true
	}
	var te *defender.TypeError
	if err := defender.CheckIsolationType(m, p.Type); !errors.As(err, &te) {
		return true
	}
	out := msg(code(hostOf(m)), txtf(" cannot take %s isolation: %s; nothing was requested.", te.Type, te.Why))
	if len(te.Works) > 0 {
		works := make([]string, len(te.Works))
		for i, t := range te.Works {
			works[i] = typeWord(t)
		}
		out.Spans = append(out.Spans, txt(" Request "), code(strings.Join(works, " or ")), txt(" instead, e.g. "),
			code("/isolate "+hostOf(m)+" "+works[0]+" <comment>"), txt("."))
	}
	s.refuse(ctx, inv, m.ID, "isolation type "+string(te.Type)+" not supported", out)
	return false
}

// typeWord is how /isolate spells an isolation type.
func typeWord(t defender.IsolationType) string {
	if t == defender.UnManagedDevice {
		return "unmanaged"
	}
	return strings.ToLower(string(t))
}

// noIsolationWarning is the warning on a release requested while MDE's
// actions show no isolation in effect: MDE's history can be incomplete
// (retention, actions from before onboarding changes), so the release is
// allowed, but the approver should know.
func noIsolationWarning(st isoState) Message {
	why := "MDE has no isolation of this machine on record"
	switch {
	case st.Last != nil && st.Why != "":
		why = "MDE's record shows no isolation in effect (" + st.Why + ")"
	case st.Last != nil:
		why = "MDE's record shows no isolation in effect (its last succeeded action was a release)"
	}
	return msg(bold("Warning: "), txt(why+"; its action history can be incomplete, so this release may be needed anyway. Approve only if the machine is known to be isolated."))
}
