package defender

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SimulatorAppID is the requestor of every simulated action: MDE shows the
// app's client id for app tokens.
const SimulatorAppID = "5eed0b07-0000-4000-8000-00000000c0de"

// Machine ids of the simulator's devices (stable across runs).
const (
	SimWeb01     = "23f2a6f58cae27fcb36fce2b9d699bf2bccb5e5f" // web-01.contoso.local, Windows Server
	SimWeb02     = "09cf9d0453e878f2f89cd99c302faa68d71c2c17" // web-02.contoso.local, Linux
	SimDB01      = "f1bc9789419ff43c9f0ce41af0a9ab8c42ba00f0" // db-01.contoso.local, Windows Server
	SimLaptop042 = "21df2fceb550c8883c1d4118f2260fbd83d87137" // laptop-042.contoso.local, macOS
	SimKioskA    = "50b1867cefcba97e4964974e9107f65c52c308f8" // kiosk.contoso.local, seen recently
	SimKioskB    = "b3c15929bf5cfeb3762b5e1ff4adffd5bccf0006" // kiosk.contoso.local, potential duplicate
	SimPrinter3F = "e202f7beb3761f4678b4701bd6cbf5cfecd74fd2" // printer-3f.contoso.local, unmanaged
)

// Simulator is an in-process MDE with a handful of devices, for demos, the
// console and tests of callers. Actions move Pending → InProgress →
// Succeeded as the injected clock passes PendingFor and CompleteAfter after
// their creation. It returns the same error kinds as Client. It is safe for
// concurrent use; set the exported fields before first use.
type Simulator struct {
	Gate          Gate          // optional; Admit is called once per simulated HTTP call without a Slot
	PendingFor    time.Duration // time an action stays Pending; default 2s
	CompleteAfter time.Duration // time from creation to Succeeded; default 5s
	// Outcome, when set, rewrites an action once CompleteAfter has passed,
	// so a test scripts Failed (with MDE's error fields) or TimeOut; nil:
	// Succeeded.
	Outcome func(MachineAction) MachineAction

	now      func() time.Time
	mu       sync.Mutex
	machines []Machine
	actions  []*simAction // creation order
	seq      int
}

type simAction struct {
	a           MachineAction // Status and LastUpdate are computed on read
	cancelledAt *time.Time
}

// NewSimulator returns a Simulator whose clock is now (time.Now if nil).
func NewSimulator(now func() time.Time) *Simulator {
	if now == nil {
		now = time.Now
	}
	t0 := now().UTC()
	ago := func(d time.Duration) *time.Time { t := t0.Add(-d); return &t }
	rbac := func(id int64) *int64 { return &id }
	m := func(id, name, os, ip string, seen time.Duration) Machine {
		return Machine{
			ID: id, ComputerDNSName: name, OSPlatform: os, LastIPAddress: ip,
			FirstSeen: ago(400 * 24 * time.Hour), LastSeen: ago(seen),
			HealthStatus: "Active", OnboardingStatus: "Onboarded", ManagedBy: "MicrosoftDefenderForEndpoint",
			RiskScore: "Low", ExposureLevel: "Medium", DeviceValue: "Normal",
			RBACGroupID: rbac(1), RBACGroupName: "Servers", AgentVersion: "10.8760.19041.4355",
		}
	}
	web01 := m(SimWeb01, "web-01.contoso.local", "WindowsServer2022", "10.1.0.11", 2*time.Hour)
	web02 := m(SimWeb02, "web-02.contoso.local", "Linux", "10.1.0.12", 3*time.Hour)
	db01 := m(SimDB01, "db-01.contoso.local", "WindowsServer2019", "10.1.2.5", time.Hour)
	db01.DeviceValue = "High"
	db01.MachineTags = []string{"crown-jewel"}
	laptop := m(SimLaptop042, "laptop-042.contoso.local", "macOS", "192.168.7.42", 5*time.Hour)
	laptop.RBACGroupName, laptop.RiskScore = "Workstations", "High"
	kioskA := m(SimKioskA, "kiosk.contoso.local", "Windows10", "10.3.0.20", 4*time.Hour)
	kioskA.RBACGroupName = "Workstations"
	kioskB := m(SimKioskB, "kiosk.contoso.local", "Windows10", "10.3.0.21", 40*24*time.Hour)
	kioskB.RBACGroupName, kioskB.HealthStatus, kioskB.IsPotentialDuplication = "Workstations", "Inactive", true
	printer := m(SimPrinter3F, "printer-3f.contoso.local", "Unknown", "10.3.9.3", 6*time.Hour)
	printer.OnboardingStatus, printer.ManagedBy, printer.HealthStatus = "Unsupported", "Unknown", "Unknown"
	printer.RBACGroupID, printer.RBACGroupName, printer.AgentVersion = nil, "", ""

	return &Simulator{
		PendingFor:    2 * time.Second,
		CompleteAfter: 5 * time.Second,
		now:           now,
		machines:      []Machine{web01, web02, db01, laptop, kioskA, kioskB, printer},
	}
}

// AddMachine adds or replaces (by ID) a device. ID must be 40 hex digits.
func (s *Simulator) AddMachine(m Machine) error {
	if !ValidMachineID(m.ID) {
		return fmt.Errorf("simulator: machine id %q is not 40 hex digits", m.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.machines {
		if strings.EqualFold(s.machines[i].ID, m.ID) {
			s.machines[i] = m
			return nil
		}
	}
	s.machines = append(s.machines, m)
	return nil
}

// Machines lists every simulated device.
func (s *Simulator) Machines() []Machine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Machine(nil), s.machines...)
}

// admit stands in for one HTTP call: ctx must be live and the caller's
// slot (or, without one, the Gate) must admit it.
func (s *Simulator) admit(ctx context.Context, slot Slot, op, budget string) error {
	if err := ctx.Err(); err != nil {
		return withCause(&APIError{Op: op, Kind: ErrUnavailable, Message: "no response from MDE"}, err)
	}
	var err error
	switch {
	case slot != nil:
		err = slot.Wait(ctx)
	case s.Gate != nil:
		err = s.Gate.Admit(ctx, budget)
	}
	if err != nil {
		return refused(op, err)
	}
	return nil
}

func notFound(op, what string) error {
	return &APIError{Op: op, Status: http.StatusNotFound, Code: "ResourceNotFound", Message: what + " was not found", Kind: ErrNotFound}
}

func (s *Simulator) machineLocked(id string) (Machine, bool) {
	for _, m := range s.machines {
		if strings.EqualFold(m.ID, id) {
			return m, true
		}
	}
	return Machine{}, false
}

// view renders an action with its status as of now.
func (s *Simulator) view(sa *simAction, now time.Time) MachineAction {
	a := sa.a
	created := a.CreationDateTimeUTC
	switch {
	case sa.cancelledAt != nil:
		a.Status, a.LastUpdateDateTimeUTC = StatusCancelled, *sa.cancelledAt
		t := *sa.cancelledAt
		a.CancellationDateTimeUTC = &t
	case now.Sub(created) < s.PendingFor:
		a.Status, a.LastUpdateDateTimeUTC = StatusPending, created
	case now.Sub(created) < s.CompleteAfter:
		a.Status, a.LastUpdateDateTimeUTC = StatusInProgress, created.Add(s.PendingFor)
	default:
		a.Status, a.LastUpdateDateTimeUTC = StatusSucceeded, created.Add(s.CompleteAfter)
		if s.Outcome != nil {
			a = s.Outcome(a)
		}
	}
	return a
}

func (s *Simulator) newAction(m Machine, typ, scope, comment string, now time.Time) *simAction {
	s.seq++
	sa := &simAction{a: MachineAction{
		ID:                  fmt.Sprintf("5eed0000-0000-4000-8000-%012x", s.seq),
		Type:                typ,
		Title:               typ + " machine",
		Scope:               scope,
		Requestor:           SimulatorAppID,
		RequestSource:       "PublicApi",
		RequestorComment:    comment,
		MachineID:           m.ID,
		ComputerDNSName:     m.ComputerDNSName,
		CreationDateTimeUTC: now,
	}}
	s.actions = append(s.actions, sa)
	return sa
}

// busyLocked reports whether the machine has an isolation action that is
// not final, which makes MDE refuse another.
func (s *Simulator) busyLocked(machineID string, now time.Time) bool {
	for _, sa := range s.actions {
		if sa.a.MachineID == machineID && (sa.a.Type == "Isolate" || sa.a.Type == "Unisolate") && !s.view(sa, now).Final() {
			return true
		}
	}
	return false
}

func (s *Simulator) isolation(ctx context.Context, slot Slot, op, budget, machineID, typ string, t IsolationType, comment string) (MachineAction, error) {
	if !ValidMachineID(machineID) {
		return MachineAction{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	if err := s.admit(ctx, slot, op, budget); err != nil {
		return MachineAction{}, err
	}
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.machineLocked(machineID)
	if !ok {
		return MachineAction{}, notFound(op, "Machine "+machineID)
	}
	if typ == "Isolate" {
		// The same rule the request stage applies before approval.
		if err := CheckIsolationType(m, t); err != nil {
			return MachineAction{}, &APIError{Op: op, Status: http.StatusBadRequest, Code: "InvalidInput", Kind: ErrBadRequest, Message: err.Error()}
		}
	}
	if s.busyLocked(m.ID, now) {
		return MachineAction{}, &APIError{Op: op, Status: http.StatusBadRequest, Code: "ActiveRequestAlreadyExists",
			Message: "Action is already in progress", Kind: ErrAlreadyInProgress}
	}
	return s.view(s.newAction(m, typ, string(t), comment, now), now), nil
}

// Isolate simulates POST /api/machines/{id}/isolate, admitted by slot
// (nil: the Gate).
func (s *Simulator) Isolate(ctx context.Context, slot Slot, machineID string, t IsolationType, comment string) (MachineAction, error) {
	op := "isolate machine " + short(machineID)
	switch t {
	case Full, Selective, UnManagedDevice:
	default:
		return MachineAction{}, badRequest(op, fmt.Sprintf("isolation type %q is not Full, Selective or UnManagedDevice", string(t)))
	}
	return s.isolation(ctx, slot, op, BudgetIsolate, machineID, "Isolate", t, comment)
}

// Unisolate simulates POST /api/machines/{id}/unisolate.
func (s *Simulator) Unisolate(ctx context.Context, slot Slot, machineID, comment string) (MachineAction, error) {
	return s.isolation(ctx, slot, "unisolate machine "+short(machineID), BudgetUnisolate, machineID, "Unisolate", "", comment)
}

// CancelMachineAction simulates POST /api/machineactions/{id}/cancel: a
// Pending or InProgress action becomes Cancelled; a final one is refused.
func (s *Simulator) CancelMachineAction(ctx context.Context, slot Slot, actionID, comment string) (MachineAction, error) {
	op := "cancel machine action " + truncate(actionID, 40)
	if !ValidActionID(actionID) {
		return MachineAction{}, badRequest(op, "the action id must be a GUID")
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	if err := s.admit(ctx, slot, op, BudgetCancel); err != nil {
		return MachineAction{}, err
	}
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sa := range s.actions {
		if !strings.EqualFold(sa.a.ID, actionID) {
			continue
		}
		if v := s.view(sa, now); v.Final() {
			return MachineAction{}, &APIError{Op: op, Status: http.StatusBadRequest, Code: "BadRequest", Kind: ErrBadRequest,
				Message: "the action is already " + v.Status + "; only a Pending or InProgress action can be cancelled"}
		}
		sa.cancelledAt = &now
		sa.a.CancellationRequestor = SimulatorAppID
		sa.a.CancellationComment = comment
		return s.view(sa, now), nil
	}
	return MachineAction{}, notFound(op, "Machine action "+actionID)
}

// MachineAction simulates GET /api/machineactions/{id}.
func (s *Simulator) MachineAction(ctx context.Context, actionID string) (MachineAction, error) {
	op := "get machine action " + truncate(actionID, 40)
	if !ValidActionID(actionID) {
		return MachineAction{}, badRequest(op, "the action id must be a GUID")
	}
	if err := s.admit(ctx, nil, op, BudgetMachineActions); err != nil {
		return MachineAction{}, err
	}
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sa := range s.actions {
		if strings.EqualFold(sa.a.ID, actionID) {
			return s.view(sa, now), nil
		}
	}
	return MachineAction{}, notFound(op, "Machine action "+actionID)
}

// MachineActions simulates GET /api/machineactions?$filter=machineId eq '…',
// newest first. An unknown machine has no actions (an empty slice).
func (s *Simulator) MachineActions(ctx context.Context, machineID string) ([]MachineAction, error) {
	op := "list actions of machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return nil, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	if err := s.admit(ctx, nil, op, BudgetMachineActions); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []MachineAction{}
	// Walk newest-created first so that same-instant actions keep that
	// order through the stable sort.
	for i := len(s.actions) - 1; i >= 0; i-- {
		if sa := s.actions[i]; strings.EqualFold(sa.a.MachineID, machineID) {
			out = append(out, s.view(sa, now))
		}
	}
	SortNewestFirst(out)
	return out, nil
}

// Machine simulates GET /api/machines/{id}.
func (s *Simulator) Machine(ctx context.Context, machineID string) (Machine, error) {
	op := "get machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return Machine{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	if err := s.admit(ctx, nil, op, BudgetMachines); err != nil {
		return Machine{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.machineLocked(machineID); ok {
		return m, nil
	}
	return Machine{}, notFound(op, "Machine "+machineID)
}

// FindMachinesByName is Client.FindMachinesByName in process: an exact,
// case-insensitive computerDnsName match, else (for a name without a dot)
// every device whose name starts with name + ".".
func (s *Simulator) FindMachinesByName(ctx context.Context, name string) ([]Machine, error) {
	op := fmt.Sprintf("find machines named %q", truncate(name, 80))
	if err := checkHostName(name); err != nil {
		return nil, badRequest(op, err.Error())
	}
	match := func(f func(string) bool) ([]Machine, error) {
		if err := s.admit(ctx, nil, op, BudgetMachines); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []Machine{}
		for _, m := range s.machines {
			if f(strings.ToLower(m.ComputerDNSName)) {
				out = append(out, m)
			}
		}
		return out, nil
	}
	lname := strings.ToLower(name)
	ms, err := match(func(n string) bool { return n == lname })
	if err != nil || len(ms) > 0 || strings.Contains(name, ".") {
		return ms, err
	}
	return match(func(n string) bool { return strings.HasPrefix(n, lname+".") })
}
