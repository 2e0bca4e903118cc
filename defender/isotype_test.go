package defender

import (
	"errors"
	"slices"
	"testing"
)

// TestCheckIsolationType pins which machine takes which isolation type and
// the type each refusal recommends.
func TestCheckIsolationType(t *testing.T) {
	win := Machine{OSPlatform: "Windows11", OnboardingStatus: "Onboarded"}
	linux := Machine{OSPlatform: "Linux", OnboardingStatus: "Onboarded"}
	ubuntu := Machine{OSPlatform: "Ubuntu", OnboardingStatus: "Onboarded"}
	mac := Machine{OSPlatform: "macOS", OnboardingStatus: "Onboarded"}
	printer := Machine{OSPlatform: "Unknown", OnboardingStatus: "Unsupported"}
	unsaid := Machine{OSPlatform: "Windows10"}
	tests := []struct {
		name  string
		m     Machine
		t     IsolationType
		works []IsolationType // nil: accepted
	}{
		{"windows full", win, Full, nil},
		{"windows selective", win, Selective, nil},
		{"windows contain", win, UnManagedDevice, []IsolationType{Full, Selective}},
		{"linux full", linux, Full, nil},
		{"linux selective", linux, Selective, []IsolationType{Full}},
		{"ubuntu selective", ubuntu, Selective, []IsolationType{Full}},
		{"linux contain", linux, UnManagedDevice, []IsolationType{Full}},
		{"macos selective", mac, Selective, nil},
		{"unmanaged full", printer, Full, []IsolationType{UnManagedDevice}},
		{"unmanaged selective", printer, Selective, []IsolationType{UnManagedDevice}},
		{"unmanaged contain", printer, UnManagedDevice, nil},
		{"onboarding unknown: MDE decides", unsaid, UnManagedDevice, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckIsolationType(tt.m, tt.t)
			var te *TypeError
			switch {
			case tt.works == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.works == nil:
			case !errors.As(err, &te):
				t.Fatalf("err = %v, want *TypeError", err)
			case !slices.Equal(te.Works, tt.works) || te.Type != tt.t:
				t.Errorf("TypeError = %+v, want works %v", te, tt.works)
			}
		})
	}
}
