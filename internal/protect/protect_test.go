package protect

import (
	"errors"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/defender"
)

const (
	idA = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378"
	idB = "0123456789abcdef0123456789abcdef01234567"
)

func mustParse(t testing.TB, spec string) Set {
	t.Helper()
	s, err := Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%q): %v", spec, err)
	}
	return s
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, spec string
		len        int
		everything bool
	}{
		{"empty", "", 0, false},
		{"spaces only", "  \t ", 0, false},
		{"one id", idA, 1, false},
		{"id upper case", strings.ToUpper(idA), 1, false},
		{"mixed with spaces", " " + idA + " , dc*.contoso.local,tag:Tier 0 , web-01 ", 4, false},
		{"duplicates dropped", idA + "," + strings.ToUpper(idA) + ",DC01,dc01,tag:x,TAG:X,a*,A*", 4, false},
		{"trailing root dot", "dc01.contoso.local.", 1, false},
		{"star alone", "*", 1, true},
		{"stars alone", "web-01,**", 2, true},
		{"star with text is not everything", "*.local", 1, false},
		{"underscore", "lab_pc-7", 1, false},
		{"tag with punctuation", "tag:Tier-0 (DCs) & PKI", 1, false},
		{"short hex is a host name", "deadbeef", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			if s.Len() != tt.len || s.Everything() != tt.everything {
				t.Fatalf("Parse(%q): Len %d, Everything %v; want %d, %v", tt.spec, s.Len(), s.Everything(), tt.len, tt.everything)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, spec string
		pos        []int  // positions reported, in order
		reason     string // in the first error's Reason
	}{
		{"empty entry", "a,,b", []int{2}, "empty entry"},
		{"trailing comma", "a,b,", []int{3}, "empty entry"},
		{"only a comma", ",", []int{1, 2}, "empty entry"},
		{"id too short", idA[:39], []int{1}, "has 39 hexadecimal digits"},
		{"id too long", idA + "0", []int{1}, "has 41 hexadecimal digits"},
		{"guid", "b4a3c8e2-1f2d-4e5a-9c7b-0a1b2c3d4e5f", []int{1}, "GUID"},
		{"slash", "web-01,dc/01", []int{2}, `"/" is not allowed`},
		{"space inside", "dc 01", []int{1}, `" " is not allowed`},
		{"bracket", "dc[0-9]", []int{1}, `"[" is not allowed`},
		{"non-ascii", "dç01", []int{1}, `"ç" is not allowed`},
		{"leading dot", ".contoso.local", []int{1}, "empty label"},
		{"double dot", "dc..local", []int{1}, "empty label"},
		{"just a dot", ".", []int{1}, "empty label"},
		{"two trailing dots", "dc01..", []int{1}, "empty label"},
		{"empty tag", "tag:", []int{1}, "empty tag"},
		{"blank tag", "TAG:   ", []int{1}, "empty tag"},
		{"control in tag", "tag:a\x01b", []int{1}, "control characters"},
		{"too long", strings.Repeat("a", 300), []int{1}, "longer than"},
		{"every bad entry reported", "ok,,dc/1,tag:", []int{2, 3, 4}, "empty entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.spec)
			if err == nil {
				t.Fatalf("Parse(%q) accepted it (%d entries)", tt.spec, s.Len())
			}
			if s.Len() != 0 {
				t.Fatalf("Parse(%q) failed but returned %d entries", tt.spec, s.Len())
			}
			var got []int
			var first *EntryError
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ee *EntryError
				if !errors.As(e, &ee) {
					t.Fatalf("error %v is not an *EntryError", e)
				}
				if first == nil {
					first = ee
				}
				got = append(got, ee.Pos)
			}
			if !equalInts(got, tt.pos) || !strings.Contains(first.Reason, tt.reason) {
				t.Fatalf("Parse(%q) = positions %v, first reason %q; want %v, %q", tt.spec, got, first.Reason, tt.pos, tt.reason)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMatch(t *testing.T) {
	s := mustParse(t, strings.Join([]string{
		idA, "dc*.contoso.local", "web-01", "sql0?", "*.pki.contoso.local", "exact.contoso.local", "tag:Tier 0",
	}, ","))
	tests := []struct {
		name string
		m    Machine
		why  string // "" when not protected
	}{
		{"id", Machine{ID: idA, DNSName: "anything"}, "matches " + idA},
		{"id upper case", Machine{ID: strings.ToUpper(idA)}, "matches " + idA},
		{"other id", Machine{ID: idB, DNSName: "laptop-7.contoso.local"}, ""},
		{"pattern", Machine{ID: idB, DNSName: "dc01.contoso.local"}, "matches dc*.contoso.local"},
		{"pattern any case", Machine{DNSName: "DC01.Contoso.Local"}, "matches dc*.contoso.local"},
		{"pattern, empty star", Machine{DNSName: "dc.contoso.local"}, "matches dc*.contoso.local"},
		{"star crosses dots", Machine{DNSName: "dc01.emea.contoso.local"}, "matches dc*.contoso.local"},
		{"pattern needs its suffix", Machine{DNSName: "dc01.fabrikam.local"}, ""},
		{"subdomain pattern", Machine{DNSName: "ca.root.pki.contoso.local"}, "matches *.pki.contoso.local"},
		{"subdomain pattern needs a label", Machine{DNSName: "pki.contoso.local"}, ""},
		{"exact name", Machine{DNSName: "web-01"}, "matches web-01"},
		{"short name", Machine{DNSName: "web-01.contoso.local"}, "matches web-01 (short name)"},
		{"short name is the first label only", Machine{DNSName: "x.web-01.contoso.local"}, ""},
		{"no prefix match", Machine{DNSName: "web-010"}, ""},
		{"question mark", Machine{DNSName: "sql07"}, "matches sql0?"},
		{"question mark short name", Machine{DNSName: "sql07.contoso.local"}, "matches sql0? (short name)"},
		{"question mark is one character", Machine{DNSName: "sql071"}, ""},
		{"exact dotted name", Machine{DNSName: "exact.contoso.local."}, "matches exact.contoso.local"},
		{"dotted entry has no short-name rule", Machine{DNSName: "exact"}, ""},
		{"tag any case", Machine{DNSName: "app-3", Tags: []string{"Finance", "tier 0"}}, "matches tag:Tier 0"},
		{"tag must be whole", Machine{Tags: []string{"Tier 01"}}, ""},
		{"id wins over pattern", Machine{ID: idA, DNSName: "dc01.contoso.local"}, "matches " + idA},
		{"nothing", Machine{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := s.Match(tt.m)
			if ok != (tt.why != "") || why != tt.why {
				t.Fatalf("Match(%+v) = %v, %q; want %q", tt.m, ok, why, tt.why)
			}
		})
	}
}

func TestMatchEverythingAndZero(t *testing.T) {
	for _, m := range []Machine{{}, {DNSName: "a"}, {ID: idA, DNSName: "x.y.z"}} {
		if ok, why := mustParse(t, "*").Match(m); !ok || why != "matches *" {
			t.Errorf("* : Match(%+v) = %v, %q", m, ok, why)
		}
		if ok, why := (Set{}).Match(m); ok || why != "" {
			t.Errorf("zero Set: Match(%+v) = %v, %q", m, ok, why)
		}
	}
}

func TestOf(t *testing.T) {
	m := defender.Machine{ID: idA, ComputerDNSName: "dc01.contoso.local", MachineTags: []string{"Tier 0"}}
	got := Of(m)
	if got.ID != idA || got.DNSName != "dc01.contoso.local" || len(got.Tags) != 1 || got.Tags[0] != "Tier 0" {
		t.Fatalf("Of(%+v) = %+v", m, got)
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"two-approvers", TwoApprovers, true},
		{" Two-Approvers\n", TwoApprovers, true},
		{"refuse", Refuse, true},
		{"REFUSE", Refuse, true},
		{"", 0, false},
		{"two approvers", 0, false},
		{"deny", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if (err == nil) != tt.ok || tt.ok && got != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != strings.ToLower(strings.TrimSpace(tt.in)) {
			t.Errorf("%v.String() = %q; want %q", got, got.String(), strings.ToLower(strings.TrimSpace(tt.in)))
		}
	}
	if var0 := Mode(0); var0 != TwoApprovers {
		t.Fatalf("zero Mode is %v; want the default two-approvers", var0)
	}
}
