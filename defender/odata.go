package defender

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidMachineID reports whether id looks like an MDE machine id (40 hex
// digits, a SHA-1).
func ValidMachineID(id string) bool {
	return len(id) == 40 && allHex(id)
}

// ValidActionID reports whether id looks like an MDE MachineAction id (a
// GUID: 8-4-4-4-12 hex digits). Checked by hand: batches validate
// hundreds, and a regexp was most of a batch's planning time.
func ValidActionID(id string) bool {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return false
	}
	return allHex(id[:8]) && allHex(id[9:13]) && allHex(id[14:18]) && allHex(id[19:23]) && allHex(id[24:])
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// maxNameLen is the longest DNS name (RFC 1035); anything longer cannot
// match a computerDnsName.
const maxNameLen = 255

// checkHostName rejects names that cannot be a computerDnsName and would
// only waste quota. It does not reject quotes or spaces: quoting makes them
// harmless and MDE simply finds nothing.
func checkHostName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the host name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("the host name is longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("the host name is not valid UTF-8")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("the host name contains control characters")
	}
	return nil
}

// odataString renders s as an OData string literal: single quotes around
// it, an embedded quote doubled. Nothing else needs escaping inside the
// literal, so user text can never end it early.
func odataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// filterQuery is the raw query string "$filter=<filter>", percent-encoded
// so that &, #, + and = in the filter stay part of its value.
func filterQuery(filter string) string {
	var b strings.Builder
	b.Grow(len(filterPrefix) + queryEscapedLen(filter))
	b.WriteString(filterPrefix)
	writeQueryEscaped(&b, filter)
	return b.String()
}

const filterPrefix = "$filter="

// queryKeep marks the bytes a query value keeps as they are: RFC 3986's
// unreserved characters and the OData punctuation ' ( ) , : / which are
// legal in a query and read literally. Everything else, including space
// (as %20: not all OData servers read '+' as a space), + & = # % ; and
// every non-ASCII byte, is percent-encoded. Keeping the punctuation makes
// a look-up term about a third shorter, so more fit in one URL.
var queryKeep = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~'(),:/" {
		t[c] = true
	}
	return t
}()

// queryEscapedLen is len of s as writeQueryEscaped writes it.
func queryEscapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !queryKeep[s[i]] {
			n += 2
		}
	}
	return n
}

func writeQueryEscaped(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	kept := 0 // s[kept:i] is still to be written as is
	for i := 0; i < len(s); i++ {
		if c := s[i]; !queryKeep[c] {
			b.WriteString(s[kept:i])
			b.Write([]byte{'%', hex[c>>4], hex[c&15]})
			kept = i + 1
		}
	}
	b.WriteString(s[kept:])
}

// nameEqFilter matches a computerDnsName exactly.
func nameEqFilter(name string) string {
	return "computerDnsName eq " + odataString(name)
}

// namePrefixFilter matches FQDNs whose first label is short, the fallback
// when an analyst types "web-01" for web-01.contoso.local.
func namePrefixFilter(short string) string {
	return "startswith(computerDnsName," + odataString(short+".") + ")"
}
