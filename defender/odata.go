package defender

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	machineIDRe = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	guidRe      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// ValidMachineID reports whether id looks like an MDE machine id (40 hex
// digits, a SHA-1).
func ValidMachineID(id string) bool { return machineIDRe.MatchString(id) }

// ValidActionID reports whether id looks like an MDE MachineAction id (a GUID).
func ValidActionID(id string) bool { return guidRe.MatchString(id) }

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
// so that &, #, + and = in the filter stay part of its value. Spaces become
// %20 rather than '+', which OData servers do not all read as a space.
func filterQuery(filter string) string {
	return "$filter=" + strings.ReplaceAll(url.QueryEscape(filter), "+", "%20")
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

// machineActionsFilter lists the actions of one machine.
func machineActionsFilter(machineID string) string {
	return "machineId eq " + odataString(machineID)
}
