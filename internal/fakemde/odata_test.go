package fakemde

import (
	"strings"
	"testing"
)

// TestParseFilter: the OData subset the client sends is served, with
// `and` binding tighter than `or`; anything else is refused.
func TestParseFilter(t *testing.T) {
	fields := map[string]bool{"id": true, "computerDnsName": true, "type": true, "machineTags": true}
	rec := record{fields: map[string]string{"id": "ABC", "computerDnsName": "web-01.contoso.local", "type": "Isolate"},
		tags: []string{"Tier0", "it's"}}
	tests := []struct {
		filter string
		want   bool
	}{
		{"id eq 'abc'", true},
		{"id eq 'x' or id eq 'abc'", true},
		{"computerDnsName eq 'web-01' or startswith(computerDnsName,'web-01.')", true},
		{"startswith(computerDnsName,'web-02.')", false},
		{"(id eq 'abc' or id eq 'x') and (type eq 'Isolate' or type eq 'Unisolate')", true},
		{"(id eq 'abc') and (type eq 'Unisolate')", false},
		{"id eq 'x' and type eq 'Isolate' or id eq 'abc'", true}, // (x and …) or abc
		{"id eq 'abc' or id eq 'x' and type eq 'Unisolate'", true},
		{"machineTags/any(tag: tag eq 'tier0')", true},
		{"machineTags/any(t:t eq 'it''s')", true},
		{"machineTags/any(tag: tag eq 'Tier1')", false},
		{"  id   eq   'abc'  ", true},
	}
	for _, tt := range tests {
		p, err := parseFilter(tt.filter, fields)
		if err != nil {
			t.Errorf("%q: %v", tt.filter, err)
			continue
		}
		if got := p(rec); got != tt.want {
			t.Errorf("%q = %v, want %v", tt.filter, got, tt.want)
		}
	}
	for _, bad := range []string{
		"", "id", "id eq", "id eq abc", "id ne 'abc'", "status eq 'x'", "id eq 'abc' or", "(id eq 'abc'",
		"id eq 'abc')", "id eq 'abc", "startswith(id 'a')", "machineTags/any(a: b eq 'x')", "id eq 'a' xor id eq 'b'",
		"id eq 'a'; drop", strings.Repeat("(", 3) + "id eq 'a'" + strings.Repeat(")", 2),
	} {
		if _, err := parseFilter(bad, fields); err == nil {
			t.Errorf("%q parsed; want an ODataError", bad)
		}
	}
}
