package defender

import (
	"fmt"
	"strings"
)

// TypeError says why a machine cannot take an isolation type and which
// types it can take. Both the request stage (before approval) and the
// simulator (as MDE would) refuse with it.
type TypeError struct {
	Type  IsolationType
	Works []IsolationType // the types the machine can take; empty when none
	Why   string          // plain words, without a final full stop
}

func (e *TypeError) Error() string {
	if len(e.Works) == 0 {
		return fmt.Sprintf("%s isolation is not possible: %s", e.Type, e.Why)
	}
	works := make([]string, len(e.Works))
	for i, t := range e.Works {
		works[i] = string(t)
	}
	return fmt.Sprintf("%s isolation is not possible: %s; use %s", e.Type, e.Why, strings.Join(works, " or "))
}

// Onboarded reports whether MDE manages m (onboardingStatus "Onboarded").
// known is false when MDE did not say, so callers let MDE decide.
func Onboarded(m Machine) (onboarded, known bool) {
	if m.OnboardingStatus == "" {
		return false, false
	}
	return strings.EqualFold(m.OnboardingStatus, "Onboarded"), true
}

// noSelective are the osPlatform values (lower case) of onboarded devices
// on which MDE offers no selective isolation: Linux in MDE's spellings of
// it (mde-api.md, section 3: Selective is Windows and macOS only).
var noSelective = map[string]bool{
	"linux": true, "ubuntu": true, "debian": true, "redhatenterpriselinux": true, "rhel": true,
	"centos": true, "suse": true, "sles": true, "oraclelinux": true, "amazonlinux": true, "fedora": true,
}

// SelectiveSupported reports whether MDE can selectively isolate a device
// of platform os. Unknown platforms are let through (MDE decides).
func SelectiveSupported(os string) bool {
	p := strings.ToLower(strings.TrimSpace(os))
	return !noSelective[p] && !strings.Contains(p, "linux")
}

// CheckIsolationType returns a *TypeError when m cannot take t: Selective
// where MDE does not support it (Linux), UnManagedDevice (contain) for an
// onboarded device, Full or Selective for a device MDE does not manage.
// What MDE did not report (an empty onboardingStatus) is not held against
// the request.
func CheckIsolationType(m Machine, t IsolationType) error {
	onboarded, known := Onboarded(m)
	managedTypes := []IsolationType{Full, Selective}
	if !SelectiveSupported(m.OSPlatform) {
		managedTypes = []IsolationType{Full}
	}
	switch {
	case known && onboarded && t == UnManagedDevice:
		return &TypeError{Type: t, Works: managedTypes, Why: "the device is onboarded to MDE, and UnManagedDevice (contain) is only for devices MDE does not manage"}
	case known && !onboarded && (t == Full || t == Selective):
		return &TypeError{Type: t, Works: []IsolationType{UnManagedDevice},
			Why: fmt.Sprintf("the device is not onboarded to MDE (onboarding status %s)", m.OnboardingStatus)}
	case t == Selective && !SelectiveSupported(m.OSPlatform):
		return &TypeError{Type: t, Works: []IsolationType{Full}, Why: fmt.Sprintf("MDE offers no selective isolation on %s", m.OSPlatform)}
	}
	return nil
}
