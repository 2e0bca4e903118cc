package fakemde

import (
	"strings"
	"testing"
	"time"
)

// TestParseFilter: the OData subset the client sends is served, with
// `and` binding tighter than `or`; anything else is refused.
func TestParseFilter(t *testing.T) {
	fields := map[string]bool{"id": true, "computerDnsName": true, "type": true, "machineTags": true, "creationDateTimeUtc": true}
	rec := record{fields: map[string]string{"id": "ABC", "computerDnsName": "web-01.contoso.local", "type": "Isolate"},
		times: map[string]time.Time{"creationDateTimeUtc": time.Date(2026, 12, 1, 10, 0, 0, 500_000_000, time.UTC)},
		tags:  []string{"Tier0", "it's"}}
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
		// Date-times compare as instants (created 10:00:00.5 UTC).
		{"creationDateTimeUtc ge 2026-12-01T10:00:00Z", true},
		{"creationDateTimeUtc ge 2026-12-01T10:00:01Z", false},
		{"creationDateTimeUtc gt 2026-12-01T10:00:00.5Z", false},
		{"creationDateTimeUtc gt 2026-12-01T10:00:00.4999Z", true},
		{"creationDateTimeUtc le 2026-12-01T10:00:00.5Z", true},
		{"creationDateTimeUtc lt 2026-12-01T10:00:00.5Z", false},
		{"creationDateTimeUtc lt 2026-12-01T11:00:00.6+01:00", true}, // 10:00:00.6 UTC
		{"creationDateTimeUtc ge 2026-12-01T11:00:01+01:00", false},
		{"type eq 'isolate' and creationDateTimeUtc ge 2026-12-01T10:00:00Z", true},
		{"type eq 'Unisolate' and creationDateTimeUtc ge 2026-12-01T10:00:00Z", false},
		{"(creationDateTimeUtc lt 2026-01-01T00:00:00Z) or id eq 'abc'", true},
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
		// Date-times: only the four comparisons on a date-time field, with
		// an unquoted, complete RFC 3339 literal.
		"creationDateTimeUtc ge '2026-12-01T10:00:00Z'", "creationDateTimeUtc eq 2026-12-01T10:00:00Z",
		"creationDateTimeUtc ne 2026-12-01T10:00:00Z", "creationDateTimeUtc eq 'x'", "creationDateTimeUtc ge",
		"creationDateTimeUtc ge 2026-12-01", "creationDateTimeUtc ge 2026-12-01T10:00:00",
		"creationDateTimeUtc ge 2018-08-01Z", "creationDateTimeUtc ge 2026-13-01T10:00:00Z",
		"creationDateTimeUtc ge 2026-12-01T25:00:00Z", "creationDateTimeUtc ge 2026-12-01T10:00:00Zjunk",
		"creationDateTimeUtc ge 20261201T100000Z", "creationDateTimeUtc ge 2026-12-01 10:00:00Z",
		"creationDateTimeUtc ge 1", "id ge 2026-12-01T10:00:00Z", "type gt 2026-12-01T10:00:00Z",
		"lastSeen ge 2026-12-01T10:00:00Z", "startswith(creationDateTimeUtc,'2026')", "id eq 2026-12-01T10:00:00Z",
		"2026-12-01T10:00:00Z le creationDateTimeUtc",
	} {
		if _, err := parseFilter(bad, fields); err == nil {
			t.Errorf("%q parsed; want an ODataError", bad)
		}
	}
}

// FuzzParseFilter: any $filter is parsed or refused, never a panic, and a
// parsed one evaluates on any record.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"id eq 'abc'", "machineTags/any(t: t eq 'x')", "startswith(computerDnsName,'w')",
		"type eq 'Isolate' and creationDateTimeUtc ge 2026-12-01T10:00:00Z", "(creationDateTimeUtc lt 2026-12-01T10:00:00.5+01:00)",
		"creationDateTimeUtc ge 9999-12-31T23:59:59.999999999Z"} {
		f.Add(s)
	}
	fields := map[string]bool{"id": true, "computerDnsName": true, "type": true, "machineTags": true, "creationDateTimeUtc": true}
	recs := []record{{}, {fields: map[string]string{"id": "a", "type": "Isolate"}, tags: []string{"x"},
		times: map[string]time.Time{"creationDateTimeUtc": time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseFilter(s, fields)
		if err != nil {
			return
		}
		for _, r := range recs {
			p(r)
		}
	})
}
