package defender

import (
	"fmt"
	"strings"
)

// Match says how many machines a reference names.
type Match int

const (
	// MatchNone: no machine has that id or name (or the reference cannot
	// be one: see Resolution.Invalid).
	MatchNone Match = iota
	// MatchOne: exactly one machine.
	MatchOne
	// MatchSeveral: several machines, or MDE had more answers than were
	// read so the count is not certain. Never guess among them.
	MatchSeveral
)

func (m Match) String() string {
	switch m {
	case MatchNone:
		return "none"
	case MatchOne:
		return "one"
	}
	return "several"
}

// Resolution is what one reference given to ResolveMachines names.
type Resolution struct {
	Ref string // as given
	// Machines found for Ref: by id, else by exact computerDnsName, else
	// (for a name without a dot) the FQDNs whose first label it is.
	Machines []Machine
	// Incomplete: MDE had more answers for Ref's look-up than were read
	// (an @odata.nextLink beyond MaxListPages), so Ref may name machines
	// not listed.
	Incomplete bool
	// Invalid says why Ref was not looked up (it cannot be a machine id or
	// a computerDnsName); "" when it was.
	Invalid string
}

// Match classifies r. A machine id is unique, so one found is one even
// when the answer was incomplete.
func (r Resolution) Match() Match {
	switch {
	case len(r.Machines) == 1 && (!r.Incomplete || ValidMachineID(r.Ref)):
		return MatchOne
	case len(r.Machines) == 0 && !r.Incomplete:
		return MatchNone
	}
	return MatchSeveral
}

// Machine is the one machine r names, when Match is MatchOne.
func (r Resolution) Machine() (Machine, bool) {
	if r.Match() != MatchOne {
		return Machine{}, false
	}
	return r.Machines[0], true
}

// resolvePlan is the look-up of a list of references: one term per
// distinct valid reference (lower-cased), in first-seen order.
type resolvePlan struct {
	refs    []string
	keyOf   []int    // refs[i] → index into keys, -1 when invalid
	invalid []string // refs[i] → why it is not looked up
	keys    []string
	terms   []string
}

func planResolve(refs []string) resolvePlan {
	p := resolvePlan{refs: refs, keyOf: make([]int, len(refs)), invalid: make([]string, len(refs))}
	seen := make(map[string]int, len(refs))
	for i, ref := range refs {
		if err := checkHostName(ref); err != nil {
			p.keyOf[i], p.invalid[i] = -1, err.Error()
			continue
		}
		key := strings.ToLower(ref)
		k, ok := seen[key]
		if !ok {
			k = len(p.keys)
			seen[key] = k
			p.keys = append(p.keys, key)
			if ValidMachineID(key) {
				p.terms = append(p.terms, eqTerm("id", key))
			} else {
				p.terms = append(p.terms, nameTerm(ref))
			}
		}
		p.keyOf[i] = k
	}
	return p
}

// machineIndex finds the machines a key names among a look-up's answers.
type machineIndex struct {
	byID, byName, byFirstLabel map[string][]Machine
}

func indexMachines(ms []Machine) machineIndex {
	x := machineIndex{byID: map[string][]Machine{}, byName: map[string][]Machine{}, byFirstLabel: map[string][]Machine{}}
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		id := strings.ToLower(m.ID)
		if seen[id] {
			continue // the same machine from two pages or chunks
		}
		seen[id] = true
		name := strings.ToLower(m.ComputerDNSName)
		x.byID[id] = append(x.byID[id], m)
		x.byName[name] = append(x.byName[name], m)
		if first, _, ok := strings.Cut(name, "."); ok {
			x.byFirstLabel[first] = append(x.byFirstLabel[first], m)
		}
	}
	return x
}

// lookup applies FindMachinesByName's rule: exact name first; the
// first-label fallback only when nothing has the exact name.
func (x machineIndex) lookup(key string) []Machine {
	if ValidMachineID(key) {
		return x.byID[key]
	}
	if ms := x.byName[key]; len(ms) > 0 || strings.Contains(key, ".") {
		return ms
	}
	return x.byFirstLabel[key]
}

// resolutions answers every reference of p from the machines its look-ups
// returned; incomplete[k] marks keys whose look-up was cut short.
func (p resolvePlan) resolutions(found []Machine, incomplete []bool) []Resolution {
	x := indexMachines(found)
	out := make([]Resolution, len(p.refs))
	for i, ref := range p.refs {
		out[i] = Resolution{Ref: ref, Invalid: p.invalid[i]}
		if k := p.keyOf[i]; k >= 0 {
			out[i].Machines = append([]Machine(nil), x.lookup(p.keys[k])...)
			out[i].Incomplete = incomplete != nil && incomplete[k]
		}
	}
	return out
}

// chunks packs p's terms into look-ups; base is the URL's length before
// the query.
func (p resolvePlan) chunks(op string, base int) ([]orChunk, error) {
	return chunkOr(op, base, "", "", p.terms, 0, 0)
}

func resolveOp(refs []string) string {
	return fmt.Sprintf("resolve %d machine references", len(refs))
}
