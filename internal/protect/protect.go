// Package protect decides which machines are protected (PROTECTED_MACHINES)
// and what protection means (PROTECTED_MODE). It parses the list once, at
// start-up, into a Set that is read-only afterwards and so safe for
// concurrent use.
//
// # Entries
//
// PROTECTED_MACHINES is a comma-separated list; spaces around entries are
// ignored, duplicates are dropped. Each entry is one of:
//
//   - a machine id: 40 hexadecimal digits, any case;
//   - tag:<MDE machine tag>: any machine whose machineTags holds that tag,
//     compared case-insensitively. The tag may contain spaces but no comma;
//   - a host-name pattern, compared case-insensitively with the machine's
//     computerDnsName: letters, digits, '-', '_' and '.', plus the wildcards
//     '*' (any run of characters, possibly empty) and '?' (one character).
//
// '*' crosses dots: "dc*" matches "dc01.contoso.local" and
// "*.contoso.local" matches "a.b.contoso.local". This errs towards
// protecting too much, the safe side of a protection list (a wrongly
// protected machine needs one more approval; a wrongly unprotected domain
// controller can be cut off with one). For the same reason an entry without
// a dot is also tried against a machine's short name, the first label of
// its DNS name: "dc01" protects "dc01.contoso.local", and so does "dc0?".
// Otherwise an entry without wildcards matches only that exact name.
//
// A pattern of stars alone ("*") protects every machine, which is a
// deliberate policy with two-approvers (a two-person rule for every
// isolation) and almost certainly a mistake with refuse; Set.Everything lets
// the configuration refuse that combination.
package protect

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/soc/isolate-bot/defender"
)

// Machine is what a Set matches: the fields of an MDE machine that
// protection rules look at.
type Machine struct {
	ID      string   // MDE machine id (40 hex digits)
	DNSName string   // computerDnsName
	Tags    []string // machineTags
}

// Of returns the fields of m that protection rules look at.
func Of(m defender.Machine) Machine {
	return Machine{ID: m.ID, DNSName: m.ComputerDNSName, Tags: m.MachineTags}
}

// Set is a parsed PROTECTED_MACHINES. The zero Set protects nothing.
type Set struct {
	ids      map[string]string // lower-case id → entry as configured
	names    map[string]string // lower-case exact name → entry
	patterns []pattern         // with wildcards, in configured order
	tags     []string          // tags as configured (trimmed), in configured order
	all      bool
}

// pattern is a lower-case host-name pattern with wildcards.
type pattern struct {
	glob   string
	prefix string // the literal text before the first wildcard: a cheap first test
	short  bool   // no dot: also tried against the short name
}

func (p pattern) match(name string) bool {
	return strings.HasPrefix(name, p.prefix) && glob(p.glob, name)
}

// glob matches a validated pattern (no '[' or '\\', so path.Match cannot
// fail) against a lower-case name. Names hold no '/', so '*' crosses dots.
func glob(p, name string) bool {
	ok, _ := path.Match(p, name)
	return ok
}

// EntryError is one entry of PROTECTED_MACHINES that Parse refused.
type EntryError struct {
	Pos    int    // 1-based position in the list
	Entry  string // the entry as written (trimmed, shortened if long)
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("entry %d %q: %s", e.Pos, e.Entry, e.Reason)
}

// maxEntry bounds one entry: longer than any host name (253) or plausible tag.
const maxEntry = 256

// Parse parses a PROTECTED_MACHINES value. An empty (or all-space) spec is
// an empty Set. Every bad entry is reported, each as an *EntryError, joined
// with errors.Join; the Set is then the zero Set.
func Parse(spec string) (Set, error) {
	var s Set
	if strings.TrimSpace(spec) == "" {
		return s, nil
	}
	var errs []error
	for i, raw := range strings.Split(spec, ",") {
		e := strings.TrimSpace(raw)
		if why := s.add(e); why != "" {
			errs = append(errs, &EntryError{Pos: i + 1, Entry: clip(e), Reason: why})
		}
	}
	if len(errs) > 0 {
		return Set{}, errors.Join(errs...)
	}
	return s, nil
}

// add adds one trimmed entry, or says why it cannot.
func (s *Set) add(e string) string {
	switch {
	case e == "":
		return "empty entry (two commas in a row, or a trailing comma?)"
	case len(e) > maxEntry:
		return fmt.Sprintf("longer than %d characters", maxEntry)
	case len(e) >= 4 && strings.EqualFold(e[:4], "tag:"):
		return s.addTag(strings.TrimSpace(e[4:]))
	case isMachineID(e):
		setAdd(&s.ids, strings.ToLower(e), strings.ToLower(e))
		return ""
	}
	if why := badID(e); why != "" {
		return why
	}
	return s.addPattern(strings.ToLower(e))
}

func (s *Set) addTag(tag string) string {
	if tag == "" {
		return "empty tag: write tag:<MDE machine tag>"
	}
	if !utf8.ValidString(tag) || strings.ContainsFunc(tag, unicode.IsControl) {
		return "the tag holds control characters or invalid UTF-8"
	}
	for _, t := range s.tags {
		if strings.EqualFold(t, tag) {
			return ""
		}
	}
	s.tags = append(s.tags, tag)
	return ""
}

func (s *Set) addPattern(p string) string {
	p = strings.TrimSuffix(p, ".") // a fully qualified name's root dot
	for i := 0; i < len(p); i++ {
		if !hostChar(p[i]) && p[i] != '*' && p[i] != '?' {
			return fmt.Sprintf("%q is not allowed in a host-name pattern (letters, digits, '-', '_', '.', '*' and '?' are)", clip(string([]rune(p[i:])[:1])))
		}
	}
	if p == "" || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		return "a host-name pattern has an empty label (a leading dot or two dots in a row); for a whole domain write *.contoso.local"
	}
	if !strings.ContainsAny(p, "*?") {
		setAdd(&s.names, p, p)
		return ""
	}
	if strings.Trim(p, "*") == "" {
		s.all = true
	}
	for _, q := range s.patterns {
		if q.glob == p {
			return ""
		}
	}
	s.patterns = append(s.patterns, pattern{glob: p, prefix: p[:strings.IndexAny(p, "*?")], short: !strings.Contains(p, ".")})
	return ""
}

// badID explains an entry that looks like a mistyped machine id.
func badID(e string) string {
	if isGUID(e) {
		return "this is a GUID (an Azure AD device id?), not an MDE machine id (40 hexadecimal digits)"
	}
	if len(e) >= 20 && isHex(e) {
		return fmt.Sprintf("looks like a machine id but has %d hexadecimal digits; MDE machine ids have 40", len(e))
	}
	return ""
}

// Match reports whether m is protected and, if so, which entry protects it
// ("matches dc*.contoso.local"), for the card. Rules are tried in this
// order: machine ids, exact names, patterns, tags (each in configured
// order). why is not escaped for Slack: tags are free text.
func (s Set) Match(m Machine) (matched bool, why string) {
	if e, ok := s.ids[strings.ToLower(m.ID)]; ok && m.ID != "" {
		return true, "matches " + e
	}
	name := strings.ToLower(strings.TrimSuffix(m.DNSName, "."))
	if e, ok := s.names[name]; ok && name != "" {
		return true, "matches " + e
	}
	short, _, dotted := strings.Cut(name, ".")
	dotted = dotted && short != ""
	if e, ok := s.names[short]; ok && dotted && !strings.Contains(e, ".") {
		return true, "matches " + e + " (short name)"
	}
	for _, p := range s.patterns {
		if p.match(name) {
			return true, "matches " + p.glob
		}
		if p.short && dotted && p.match(short) {
			return true, "matches " + p.glob + " (short name)"
		}
	}
	for _, t := range s.tags {
		for _, mt := range m.Tags {
			if strings.EqualFold(strings.TrimSpace(mt), t) {
				return true, "matches tag:" + t
			}
		}
	}
	return false, ""
}

// Len is the number of distinct entries.
func (s Set) Len() int { return len(s.ids) + len(s.names) + len(s.patterns) + len(s.tags) }

// Everything reports whether an entry ("*") protects every machine.
func (s Set) Everything() bool { return s.all }

func setAdd(m *map[string]string, k, v string) {
	if *m == nil {
		*m = make(map[string]string)
	}
	(*m)[k] = v
}

// hostChar is a character of an RFC 1123 host name, plus '_' and '.' (MDE
// names may carry '_').
func hostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

func isMachineID(s string) bool { return len(s) == 40 && isHex(s) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// isGUID: 8-4-4-4-12 hexadecimal digits.
func isGUID(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 5 {
		return false
	}
	for i, n := range [5]int{8, 4, 4, 4, 12} {
		if len(parts[i]) != n || !isHex(parts[i]) {
			return false
		}
	}
	return true
}

// clip shortens an entry for an error message.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= 80 {
		return s
	}
	return string([]rune(s)[:80]) + "…"
}
