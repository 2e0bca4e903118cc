// Package safetext neutralises characters that make untrusted text display
// differently from what it contains: bidirectional-text controls (which can
// reverse "exe.txt" into "txt.exe" on screen), zero-width characters (which
// hide text inside a host name or split a word a reader searches for) and
// control characters. Every transport applies it to user and MDE text
// before escaping for its own format.
package safetext

import (
	"strings"
	"unicode"
)

// Replacement is what a neutralised character becomes: visible, so a
// reader sees that something was there.
const Replacement = '\uFFFD'

// Visible returns s with every invisible or reordering character replaced
// by Replacement. Newlines and tabs stay.
func Visible(s string) string {
	if !strings.ContainsFunc(s, hidden) {
		return s // the common case allocates nothing
	}
	return strings.Map(func(r rune) rune {
		if hidden(r) {
			return Replacement
		}
		return r
	}, s)
}

// hidden reports whether r changes or hides what a reader sees.
func hidden(r rune) bool {
	switch r {
	case '\n', '\t':
		return false
	case '\u2028', '\u2029': // line and paragraph separators
		return true
	}
	// Cf (format) covers the bidi controls U+202A–202E and U+2066–2069,
	// the zero-width U+200B–200D, U+2060, U+FEFF, the soft hyphen and
	// the Mongolian vowel separator.
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r)
}
