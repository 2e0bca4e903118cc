package safetext

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestVisible(t *testing.T) {
	const r = string(Replacement)
	tests := []struct{ name, in, want string }{
		{"plain text unchanged", "web-01.contoso.local beaconing", "web-01.contoso.local beaconing"},
		{"newline and tab kept", "a\nb\tc", "a\nb\tc"},
		{"right-to-left override", "invoice\u202Efdp.exe", "invoice" + r + "fdp.exe"},
		{"isolates and pops", "\u2066a\u2067b\u2068c\u2069", r + "a" + r + "b" + r + "c" + r},
		{"left-to-right mark", "a\u200Eb\u200Fc", "a" + r + "b" + r + "c"},
		{"zero-width space joiner non-joiner", "we\u200Bb\u200C-\u200D01", "we" + r + "b" + r + "-" + r + "01"},
		{"word joiner and BOM", "\uFEFFhost\u2060name", r + "host" + r + "name"},
		{"soft hyphen", "ad\u00ADmin", "ad" + r + "min"},
		{"separators", "a\u2028b\u2029c", "a" + r + "b" + r + "c"},
		{"C0 and C1 controls", "a\x1b[31mb\u0085c", "a" + r + "[31mb" + r + "c"},
		{"ordinary non-ASCII kept", "Zürich 東京 ✓", "Zürich 東京 ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Visible(tt.in); got != tt.want {
				t.Errorf("Visible(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzVisible(f *testing.F) {
	for _, s := range []string{"", "plain", "a\u202Eb", "x\u200By", "\x00\x1b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip()
		}
		out := Visible(s)
		if utf8.RuneCountInString(out) != utf8.RuneCountInString(s) {
			t.Fatalf("rune count changed: %q → %q", s, out)
		}
		for _, r := range out {
			if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r)) {
				t.Fatalf("%q still holds %U", out, r)
			}
		}
		if Visible(out) != out {
			t.Fatalf("not idempotent on %q", s)
		}
		if !strings.ContainsRune(s, Replacement) && !strings.ContainsFunc(s, hidden) && out != s {
			t.Fatalf("changed clean text %q", s)
		}
	})
}

func BenchmarkVisibleClean(b *testing.B) {
	s := strings.Repeat("beaconing to 203.0.113.9 from web-01 ", 8)
	for b.Loop() {
		_ = Visible(s)
	}
}
