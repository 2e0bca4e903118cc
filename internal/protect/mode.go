package protect

import (
	"fmt"
	"strings"
)

// Mode is what PROTECTED_MODE says to do with a request for a protected
// machine. The zero Mode is TwoApprovers, the documented default.
type Mode int

const (
	// TwoApprovers: isolating needs two different approvers, neither the
	// requester.
	TwoApprovers Mode = iota
	// Refuse: the request is refused, privately, before approval.
	Refuse
)

// String is the PROTECTED_MODE spelling.
func (m Mode) String() string {
	switch m {
	case TwoApprovers:
		return "two-approvers"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses PROTECTED_MODE: "two-approvers" or "refuse", any case,
// spaces around ignored. Anything else, the empty string included, is an
// error: the default belongs to the configuration, not here.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "two-approvers":
		return TwoApprovers, nil
	case "refuse":
		return Refuse, nil
	}
	return 0, fmt.Errorf("%q is not a protected mode: use two-approvers or refuse", clip(s))
}
