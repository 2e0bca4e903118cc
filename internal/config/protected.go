package config

import "github.com/soc/isolate-bot/internal/protect"

// fillProtected parses PROTECTED_MACHINES and PROTECTED_MODE (the rules
// are internal/protect's). An entry that protects every machine ("*")
// with PROTECTED_MODE=refuse would refuse every isolation: almost
// certainly a mistake, so it is refused here rather than found out during
// an incident.
func (c *Config) fillProtected(r raw) Problems {
	var p Problems
	set, err := protect.Parse(r.Protected)
	c.ProtectedMachines, c.ProtectedMachinesSpec = set, r.Protected
	if err != nil {
		// One problem per bad entry; entries name machines, not secrets.
		for _, e := range unjoin(err) {
			p = append(p, Problem{Var: "PROTECTED_MACHINES", Msg: e.Error() + "; write 40-hex machine ids, host-name patterns such as dc*.contoso.local, or tag:<MDE machine tag>, comma-separated"})
		}
	}
	mode, err := protect.ParseMode(r.ProtectedMode)
	c.ProtectedMode = mode
	switch {
	case err != nil:
		p = append(p, Problem{Var: "PROTECTED_MODE", Msg: "must be two-approvers (the default: a protected machine's isolation needs two different approvers) or refuse (it is refused)"})
	case mode == protect.Refuse && set.Everything():
		p = append(p, Problem{Var: "PROTECTED_MODE", Msg: "is refuse while PROTECTED_MACHINES protects every machine (an entry of only *): every isolation would be refused; use two-approvers for a two-person rule on every machine, or list the machines to protect"})
	}
	return p
}

// unjoin splits an errors.Join into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
