package protect

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse: no panics; a refusal is a list of *EntryError at real
// positions; an accepted entry protects what it names.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", idA, "dc*.contoso.local,tag:Tier 0", "a,,b", "tag:", ",", "*", "x.", ".", "dç", "b4a3c8e2-1f2d-4e5a-9c7b-0a1b2c3d4e5f",
		strings.Repeat("ab,", 50), "TAG:a\x00", "sql0?,web-01 , " + idB,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec)
		entries := strings.Split(spec, ",")
		if err != nil {
			if s.Len() != 0 {
				t.Fatalf("refused with %d entries", s.Len())
			}
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ee *EntryError
				if !errors.As(e, &ee) || ee.Pos < 1 || ee.Pos > len(entries) || ee.Reason == "" {
					t.Fatalf("bad entry error %#v", e)
				}
			}
			return
		}
		if strings.TrimSpace(spec) != "" && (s.Len() < 1 || s.Len() > len(entries)) {
			t.Fatalf("%d entries from %d", s.Len(), len(entries))
		}
		for _, e := range entries {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			if ok, why := s.Match(machineNamedBy(e)); !ok || why == "" {
				t.Fatalf("entry %q does not protect %+v", e, machineNamedBy(e))
			}
		}
	})
}

// machineNamedBy is a machine an entry must protect.
func machineNamedBy(e string) Machine {
	switch {
	case len(e) >= 4 && strings.EqualFold(e[:4], "tag:"):
		return Machine{Tags: []string{asciiUpper(strings.TrimSpace(e[4:]))}}
	case isMachineID(e):
		return Machine{ID: strings.ToUpper(e)}
	}
	// Wildcards as literal characters: '*' matches "*", '?' matches "?".
	return Machine{DNSName: strings.ToUpper(e)}
}

// FuzzMatch checks one pattern against one name: no panics; without
// wildcards it matches exactly (or the short name, for an entry without a
// dot); with wildcards it agrees with a regular expression.
func FuzzMatch(f *testing.F) {
	for _, c := range [][2]string{
		{"dc*.contoso.local", "dc01.contoso.local"}, {"web-01", "WEB-01.x"}, {"*", ""}, {"sql0?", "sql0"},
		{"a*b*c", "aXbYbc"}, {"*.x", ".x"}, {"ab", "ab."}, {"a?", "aé"}, {"x", "x/y"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		if strings.Contains(pat, ",") || strings.HasPrefix(strings.ToLower(strings.TrimSpace(pat)), "tag:") {
			return
		}
		s, err := Parse(pat)
		if err != nil || s.Len() != 1 || isMachineID(strings.TrimSpace(pat)) {
			return
		}
		got, why := s.Match(Machine{DNSName: name})
		if got != (why != "") {
			t.Fatalf("Match = %v, %q", got, why)
		}
		if !isASCII(name) || strings.Contains(name, "/") {
			return // the references below are for ASCII host names
		}
		p := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(pat)), ".")
		n := strings.TrimSuffix(strings.ToLower(name), ".")
		short, _, dotted := strings.Cut(n, ".")
		tryShort := dotted && short != "" && !strings.Contains(p, ".")
		var want bool
		if !strings.ContainsAny(p, "*?") {
			want = n == p || tryShort && short == p
		} else {
			re := globRegexp(p)
			want = re.MatchString(n) || tryShort && re.MatchString(short)
		}
		if got != want {
			t.Fatalf("pattern %q, name %q: Match = %v (%q); want %v", pat, name, got, why, want)
		}
	})
}

func globRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

func asciiUpper(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// BenchmarkMatch: every request for a machine is matched once, against a
// list of 100 entries (30 ids, 30 names, 30 patterns, 10 tags).
//
//	go test -run '^$' -bench Match -count 10 ./internal/protect/ | benchstat -
func BenchmarkMatch(b *testing.B) {
	var spec []string
	for i := range 30 {
		spec = append(spec, fmt.Sprintf("%040x", i+1), fmt.Sprintf("srv-%02d.contoso.local", i), fmt.Sprintf("dc%02d*.site%d.contoso.local", i, i))
	}
	for i := range 10 {
		spec = append(spec, fmt.Sprintf("tag:Tier %d", i))
	}
	s := mustParse(b, strings.Join(spec, ","))
	if s.Len() != 100 {
		b.Fatalf("%d rules", s.Len())
	}
	for _, bc := range []struct {
		name string
		m    Machine
		want bool
	}{
		{"id", Machine{ID: fmt.Sprintf("%040X", 7), DNSName: "x.contoso.local"}, true},
		{"last tag", Machine{ID: idA, DNSName: "app-7.contoso.local", Tags: []string{"Finance", "tier 9"}}, true},
		{"none", Machine{ID: idA, DNSName: "laptop-1234.emea.contoso.local", Tags: []string{"Finance", "Laptops"}}, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, _ := s.Match(bc.m); ok != bc.want {
					b.Fatalf("Match = %v", ok)
				}
			}
		})
	}
}
