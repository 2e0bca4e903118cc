// Package defender is the Microsoft Defender for Endpoint (MDE) machine
// isolation API: a real HTTP client (Client) authenticated through MSAL, and
// an in-process Simulator with the same methods for demos and the console.
//
// # Errors
//
// Every method returns nil or an error for which errors.As finds an
// *APIError, whose Kind (also matched by errors.Is) says what to do:
//
//   - ErrBadRequest: an invalid argument (machine id not 40 hex digits,
//     action id not a GUID, empty comment, bad host name, unknown isolation
//     type), refused before any HTTP call; or MDE answered 400 (e.g.
//     UnManagedDevice for an onboarded device).
//   - ErrNotFound: Machine, MachineAction, CancelMachineAction for an
//     unknown id, after one more read NotFoundRetryDelay later (MDE answers
//     spurious 404s). The list reads (FindMachinesByName, MachineActions
//     and the batched reads) never return it: no match is an empty slice.
//   - ErrAlreadyInProgress: Isolate, Unisolate while the machine has a
//     Pending or InProgress isolation action (MDE 400
//     ActiveRequestAlreadyExists). Read MachineActions to link it.
//   - ErrUnauthorized: Azure AD refused the credentials (check AZURE_*), or
//     MDE answered 401 twice: after a first 401 the call is admitted anew
//     and sent once more with a token fetched past MSAL's cache (a 401
//     means MDE did nothing). ErrForbidden: the app lacks a role; Message
//     names it.
//   - ErrThrottled: MDE answered 429; RetryAfter is its Retry-After (0 when
//     absent). GETs wait it out themselves when it is short enough.
//   - ErrUnavailable: no usable answer (5xx, transport failure, timeout,
//     Azure AD unreachable) after the GET retries; or the caller's Slot or
//     the Gate refused the call (then errors.Is also matches its error).
//     For a POST it means MDE certainly did not act.
//   - ErrTruncated: MachineActions, ActionsForMachines, MachineActionsByID,
//     MachinesByTag: MDE has more answers than the read's bound ($top,
//     MaxListPages), so a partial answer could mislead. Nothing is
//     returned. Not retried, nor is a 2xx answer over MaxResponseBytes.
//   - ErrOutcomeUnknown: POST only (Isolate, Unisolate,
//     CancelMachineAction). The request may have reached MDE (5xx, timeout
//     or dropped connection after sending). Never retry blindly: read
//     MachineActions first.
//
// POSTs are not retried otherwise. When ctx ends, errors.Is also matches
// ctx.Err(). Errors carry no token or secret, and foreign text in them (MDE
// messages) is bounded and has URL query strings removed, but is not
// escaped for Slack.
package defender

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// IsolationType is the MDE "IsolationType" body parameter. MDE body
// parameters are case-sensitive, so these are the exact wire values.
type IsolationType string

const (
	Full            IsolationType = "Full"
	Selective       IsolationType = "Selective"
	UnManagedDevice IsolationType = "UnManagedDevice"
)

// Budget names one MDE API for rate limiting: MDE allows each API
// 100 calls per minute and 1500 per hour on its own.
const (
	BudgetIsolate        = "isolate"
	BudgetUnisolate      = "unisolate"
	BudgetMachineActions = "machineactions"
	BudgetMachines       = "machines"
	BudgetCancel         = "cancel"
)

// MachineAction status values as MDE spells them.
const (
	StatusPending    = "Pending"
	StatusInProgress = "InProgress"
	StatusSucceeded  = "Succeeded"
	StatusFailed     = "Failed"
	StatusTimeOut    = "TimeOut"
	StatusCancelled  = "Cancelled"
)

// MachineAction is the MDE MachineAction entity. Unknown fields in a
// response are ignored.
type MachineAction struct {
	ID                      string           `json:"id"`
	Type                    string           `json:"type"`
	Title                   string           `json:"title,omitempty"`
	Scope                   string           `json:"scope,omitempty"`
	Requestor               string           `json:"requestor"`
	ExternalID              string           `json:"externalID,omitempty"`
	RequestSource           string           `json:"requestSource,omitempty"`
	Commands                []any            `json:"commands,omitempty"`
	CancellationRequestor   string           `json:"cancellationRequestor,omitempty"`
	RequestorComment        string           `json:"requestorComment"`
	CancellationComment     string           `json:"cancellationComment,omitempty"`
	Status                  string           `json:"status"`
	MachineID               string           `json:"machineId"`
	ComputerDNSName         string           `json:"computerDnsName"`
	CreationDateTimeUTC     time.Time        `json:"creationDateTimeUtc"`
	CancellationDateTimeUTC *time.Time       `json:"cancellationDateTimeUtc,omitempty"`
	LastUpdateDateTimeUTC   time.Time        `json:"lastUpdateDateTimeUtc"`
	LastUpdateTimeUTC       *time.Time       `json:"lastUpdateTimeUtc,omitempty"` // spelling used by the list example
	RelatedFileInfo         *RelatedFileInfo `json:"relatedFileInfo,omitempty"`
	// Error, ErrorHResult and TroubleshootInfo are undocumented fields seen
	// in real responses. Their JSON type is not promised (a string, a
	// number, an object), so they are kept raw and never fail a decode;
	// ErrorDetails renders them for a person.
	Error            json.RawMessage `json:"error,omitempty"`
	ErrorHResult     json.RawMessage `json:"errorHResult,omitempty"`
	TroubleshootInfo json.RawMessage `json:"troubleshootInfo,omitempty"`
}

// Final reports whether the action reached a status MDE will not change.
func (a MachineAction) Final() bool {
	switch a.Status {
	case StatusSucceeded, StatusFailed, StatusTimeOut, StatusCancelled:
		return true
	}
	return false
}

// RelatedFileInfo is part of MachineAction.
type RelatedFileInfo struct {
	FileIdentifier     string `json:"fileIdentifier"`
	FileIdentifierType string `json:"fileIdentifierType"`
}

// Machine is the MDE Machine entity (documented fields plus those seen in
// published real responses). MDE has no isolation-state field: derive it
// from the newest Isolate/Unisolate MachineAction.
type Machine struct {
	ID                     string      `json:"id"`
	ComputerDNSName        string      `json:"computerDnsName"`
	FirstSeen              *time.Time  `json:"firstSeen,omitempty"`
	LastSeen               *time.Time  `json:"lastSeen,omitempty"`
	OSPlatform             string      `json:"osPlatform"`
	Version                string      `json:"version,omitempty"`
	OSProcessor            string      `json:"osProcessor,omitempty"`
	OSBuild                *int64      `json:"osBuild,omitempty"`
	OSArchitecture         string      `json:"osArchitecture,omitempty"`
	LastIPAddress          string      `json:"lastIpAddress,omitempty"`
	LastExternalIPAddress  string      `json:"lastExternalIpAddress,omitempty"`
	IPAddresses            []IPAddress `json:"ipAddresses,omitempty"`
	HealthStatus           string      `json:"healthStatus"`
	OnboardingStatus       string      `json:"onboardingStatus,omitempty"`
	RBACGroupID            *int64      `json:"rbacGroupId,omitempty"`
	RBACGroupName          string      `json:"rbacGroupName,omitempty"`
	RiskScore              string      `json:"riskScore"`
	ExposureLevel          string      `json:"exposureLevel"`
	DeviceValue            string      `json:"deviceValue,omitempty"`
	AADDeviceID            string      `json:"aadDeviceId,omitempty"`
	MachineTags            []string    `json:"machineTags,omitempty"`
	IsAADJoined            bool        `json:"isAadJoined,omitempty"`
	IsPotentialDuplication bool        `json:"isPotentialDuplication,omitempty"`
	MergedIntoMachineID    string      `json:"mergedIntoMachineId,omitempty"`
	IsExcluded             bool        `json:"isExcluded,omitempty"`
	ExclusionReason        string      `json:"exclusionReason,omitempty"`
	AgentVersion           string      `json:"agentVersion,omitempty"`
	DefenderAVStatus       string      `json:"defenderAvStatus,omitempty"`
	ManagedBy              string      `json:"managedBy,omitempty"`
	ManagedByStatus        string      `json:"managedByStatus,omitempty"`
	VMMetadata             any         `json:"vmMetadata,omitempty"`
}

// IPAddress is one entry of Machine.IPAddresses.
type IPAddress struct {
	IPAddress         string `json:"ipAddress"`
	MACAddress        string `json:"macAddress,omitempty"`
	Type              string `json:"type,omitempty"`
	OperationalStatus string `json:"operationalStatus,omitempty"`
}

// Error kinds callers branch on with errors.Is. An *APIError wraps exactly
// one of them.
var (
	ErrNotFound          = errors.New("not found")
	ErrAlreadyInProgress = errors.New("an action is already in progress for this machine")
	ErrForbidden         = errors.New("forbidden")
	ErrUnauthorized      = errors.New("unauthorized")
	ErrBadRequest        = errors.New("bad request")
	ErrThrottled         = errors.New("throttled")
	ErrUnavailable       = errors.New("unavailable")
	// ErrOutcomeUnknown: a POST may have reached MDE (timeout, dropped
	// connection, 5xx after sending). MDE isolation is not idempotent, so
	// the caller must read MachineActions before trying again.
	ErrOutcomeUnknown = errors.New("outcome unknown: the request may have reached MDE")
	// ErrTruncated: a bounded read ($top, MaxListPages) met more answers
	// than it may read, so what it would return could miss some (a
	// machine's newest action): nothing is returned.
	ErrTruncated = errors.New("more answers than were read")
)

// APIError is a failed MDE call. It never holds a token or secret.
type APIError struct {
	Op         string        // e.g. "isolate machine 7b1f…"
	Status     int           // HTTP status, 0 when no response arrived
	Code       string        // MDE error.code, e.g. "ResourceNotFound"
	Message    string        // MDE error.message (free text, may change)
	Target     string        // MDE error.target: the correlation id for support
	RetryAfter time.Duration // from a 429's Retry-After header
	Kind       error         // one of the Err* kinds above
}

func (e *APIError) Error() string {
	s := e.Op + ": " + e.Kind.Error()
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d", e.Status)
		if e.Code != "" {
			s += " " + e.Code
		}
		s += ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf("; retry after %s", e.RetryAfter)
	}
	if e.Target != "" {
		s += "; correlation id " + e.Target
	}
	return s
}

func (e *APIError) Unwrap() error { return e.Kind }
