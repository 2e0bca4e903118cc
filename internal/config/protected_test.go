package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/internal/protect"
)

// TestProtected: PROTECTED_MACHINES and PROTECTED_MODE load through
// internal/protect; every bad entry is its own problem; refuse with an
// entry protecting every machine is refused.
func TestProtected(t *testing.T) {
	const dcID = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name, machines, mode string
		problems             []string // variables with problems, in order
		mode2                protect.Mode
		protects             protect.Machine
	}{
		{"defaults", "", "", nil, protect.TwoApprovers, protect.Machine{}},
		{"id", strings.ToUpper(dcID), "two-approvers", nil, protect.TwoApprovers, protect.Machine{ID: dcID}},
		{"pattern", "dc*.contoso.local", "", nil, protect.TwoApprovers, protect.Machine{DNSName: "DC01.contoso.local"}},
		{"tag", "tag:Tier0", " REFUSE ", nil, protect.Refuse, protect.Machine{Tags: []string{"tier0"}}},
		{"everything, two approvers", "*", "two-approvers", nil, protect.TwoApprovers, protect.Machine{DNSName: "any.host"}},
		{"everything refused", "dc01, *", "refuse", []string{"PROTECTED_MODE"}, 0, protect.Machine{}},
		{"bad mode", "", "three-approvers", []string{"PROTECTED_MODE"}, 0, protect.Machine{}},
		{"two bad entries", "dc01,,web/01", "", []string{"PROTECTED_MACHINES", "PROTECTED_MACHINES"}, 0, protect.Machine{}},
		{"azure device guid", "01234567-89ab-cdef-0123-456789abcdef", "", []string{"PROTECTED_MACHINES"}, 0, protect.Machine{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(lookup(with(minimal(), "PROTECTED_MACHINES", tt.machines, "PROTECTED_MODE", tt.mode)))
			if tt.problems != nil {
				var ps Problems
				if !asProblems(err, &ps) || !slices.Equal(ps.Vars(), tt.problems) {
					t.Fatalf("Load: %v; want problems for %v", err, tt.problems)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ProtectedMode != tt.mode2 {
				t.Errorf("mode %v, want %v", c.ProtectedMode, tt.mode2)
			}
			if hit, _ := c.ProtectedMachines.Match(tt.protects); hit != (tt.machines != "") {
				t.Errorf("%+v protected = %v, want %v", tt.protects, hit, tt.machines != "")
			}
			if !strings.Contains(c.Redacted(), "PROTECTED_MACHINES="+tt.machines+"\n") {
				t.Errorf("Redacted does not show PROTECTED_MACHINES as written")
			}
		})
	}
}
