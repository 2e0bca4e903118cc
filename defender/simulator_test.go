package defender

import (
	"context"
	"errors"
	"github.com/soc/isolate-bot/internal/testclock"
	"sync"
	"testing"
	"time"
)

func newSim(t *testing.T) (*Simulator, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	return NewSimulator(clk.Now), clk
}

// TestSimulatorProgression proves an action's status follows the injected
// clock and that a second isolation is refused until the first is final.
func TestSimulatorProgression(t *testing.T) {
	s, clk := newSim(t)
	ctx := context.Background()
	t0 := clk.Now()
	a, err := s.Isolate(ctx, nil, SimWeb01, Full, "alert 42; requested by U1, approved by U2")
	if err != nil {
		t.Fatalf("Isolate: %v", err)
	}
	if a.Status != StatusPending || a.Type != "Isolate" || a.Scope != "Full" || a.Requestor != SimulatorAppID ||
		a.RequestorComment != "alert 42; requested by U1, approved by U2" || a.ComputerDNSName != "web-01.contoso.local" ||
		!a.CreationDateTimeUTC.Equal(t0) || !ValidActionID(a.ID) {
		t.Errorf("new action = %+v", a)
	}
	steps := []struct {
		at         time.Duration
		status     string
		lastUpdate time.Duration
		busy       bool
	}{
		{0, StatusPending, 0, true},
		{1999 * time.Millisecond, StatusPending, 0, true},
		{2 * time.Second, StatusInProgress, 2 * time.Second, true},
		{4999 * time.Millisecond, StatusInProgress, 2 * time.Second, true},
		{5 * time.Second, StatusSucceeded, 5 * time.Second, false},
	}
	for _, st := range steps {
		clk.Set(t0.Add(st.at))
		got, err := s.MachineAction(ctx, a.ID)
		if err != nil {
			t.Fatalf("at %v: MachineAction: %v", st.at, err)
		}
		if got.Status != st.status || !got.LastUpdateDateTimeUTC.Equal(t0.Add(st.lastUpdate)) {
			t.Errorf("at %v: status %s updated %v, want %s at +%v", st.at, got.Status, got.LastUpdateDateTimeUTC, st.status, st.lastUpdate)
		}
		if st.busy {
			_, err := s.Unisolate(ctx, nil, SimWeb01, "too early")
			var ae *APIError
			if !errors.Is(err, ErrAlreadyInProgress) || !errors.As(err, &ae) || ae.Code != "ActiveRequestAlreadyExists" || ae.Status != 400 {
				t.Errorf("at %v: Unisolate err = %v, want ActiveRequestAlreadyExists", st.at, err)
			}
		}
	}
	u, err := s.Unisolate(ctx, nil, SimWeb01, "release")
	if err != nil || u.Type != "Unisolate" || u.Scope != "" || u.Status != StatusPending {
		t.Fatalf("Unisolate after success = %+v, %v", u, err)
	}
	acts, err := s.MachineActions(ctx, SimWeb01)
	if err != nil || len(acts) != 2 || acts[0].ID != u.ID || acts[1].ID != a.ID {
		t.Errorf("MachineActions = %+v, %v; want unisolate then isolate", acts, err)
	}
	if other, _ := s.MachineActions(ctx, SimDB01); other == nil || len(other) != 0 {
		t.Errorf("MachineActions of an untouched machine = %#v, want empty non-nil", other)
	}
}

// TestSimulatorTimingIsConfigurable proves PendingFor and CompleteAfter.
func TestSimulatorTimingIsConfigurable(t *testing.T) {
	s, clk := newSim(t)
	s.PendingFor, s.CompleteAfter = 10*time.Second, time.Minute
	a, err := s.Isolate(context.Background(), nil, SimWeb02, Full, "c")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	if got, _ := s.MachineAction(context.Background(), a.ID); got.Status != StatusInProgress {
		t.Errorf("status at 30s = %s, want InProgress", got.Status)
	}
	clk.Advance(30 * time.Second)
	if got, _ := s.MachineAction(context.Background(), a.ID); got.Status != StatusSucceeded {
		t.Errorf("status at 60s = %s, want Succeeded", got.Status)
	}
}

func TestSimulatorFindMachinesByName(t *testing.T) {
	s, _ := newSim(t)
	tests := []struct {
		name string
		ids  []string
	}{
		{"web-01.contoso.local", []string{SimWeb01}},
		{"WEB-01.Contoso.Local", []string{SimWeb01}},
		{"web-01", []string{SimWeb01}},
		{"kiosk.contoso.local", []string{SimKioskA, SimKioskB}},
		{"KIOSK", []string{SimKioskA, SimKioskB}},
		{"laptop-042", []string{SimLaptop042}},
		{"web", nil},
		{"web-01.contoso", nil},
		{"x' or 1 eq 1 or '", nil},
	}
	for _, tt := range tests {
		ms, err := s.FindMachinesByName(context.Background(), tt.name)
		if err != nil {
			t.Fatalf("%q: %v", tt.name, err)
		}
		if ms == nil || len(ms) != len(tt.ids) {
			t.Errorf("%q: got %d machines (nil=%v), want %d", tt.name, len(ms), ms == nil, len(tt.ids))
			continue
		}
		for i := range ms {
			if ms[i].ID != tt.ids[i] {
				t.Errorf("%q: machine %d = %s, want %s", tt.name, i, ms[i].ID, tt.ids[i])
			}
		}
	}
	kiosks, _ := s.FindMachinesByName(context.Background(), "kiosk.contoso.local")
	if kiosks[0].IsPotentialDuplication || !kiosks[1].IsPotentialDuplication {
		t.Errorf("exactly the second kiosk should be a potential duplicate")
	}
	if _, err := s.FindMachinesByName(context.Background(), ""); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty name: err = %v, want ErrBadRequest", err)
	}
}

// TestSimulatorIsolationTypeRules proves UnManagedDevice is only for the
// unmanaged device, Full/Selective only for onboarded ones and Selective
// never on Linux.
func TestSimulatorIsolationTypeRules(t *testing.T) {
	tests := []struct {
		machine string
		typ     IsolationType
		want    error
	}{
		{SimPrinter3F, Full, ErrBadRequest},
		{SimPrinter3F, Selective, ErrBadRequest},
		{SimPrinter3F, UnManagedDevice, nil},
		{SimWeb01, UnManagedDevice, ErrBadRequest},
		{SimLaptop042, Selective, nil},
		{SimWeb02, Selective, ErrBadRequest}, // Linux: MDE offers no selective isolation
		{SimWeb02, Full, nil},
		{SimDB01, "Partial", ErrBadRequest},
		{"0000000000000000000000000000000000000000", Full, ErrNotFound},
		{"not-an-id", Full, ErrBadRequest},
	}
	for _, tt := range tests {
		s, _ := newSim(t)
		a, err := s.Isolate(context.Background(), nil, tt.machine, tt.typ, "c")
		if tt.want == nil {
			if err != nil || a.Scope != string(tt.typ) {
				t.Errorf("%s %s: %+v, %v", tt.machine, tt.typ, a, err)
			}
			continue
		}
		var ae *APIError
		if !errors.Is(err, tt.want) || !errors.As(err, &ae) || ae.Message == "" {
			t.Errorf("%s %s: err = %v, want %v with a message", tt.machine, tt.typ, err, tt.want)
		}
		if acts, _ := s.MachineActions(context.Background(), SimPrinter3F); len(acts) != 0 && tt.machine == SimPrinter3F {
			t.Errorf("a refused isolation created an action")
		}
	}
}

func TestSimulatorCancel(t *testing.T) {
	s, clk := newSim(t)
	ctx := context.Background()
	a, err := s.Isolate(ctx, nil, SimDB01, Full, "c")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second) // InProgress
	got, err := s.CancelMachineAction(ctx, nil, a.ID, "mistake")
	if err != nil || got.Status != StatusCancelled || got.CancellationComment != "mistake" ||
		got.CancellationRequestor != SimulatorAppID || got.CancellationDateTimeUTC == nil || !got.CancellationDateTimeUTC.Equal(clk.Now()) {
		t.Fatalf("cancel = %+v, %v", got, err)
	}
	clk.Advance(time.Hour)
	if got, _ := s.MachineAction(ctx, a.ID); got.Status != StatusCancelled {
		t.Errorf("a cancelled action became %s", got.Status)
	}
	// The machine is free again, and a final action cannot be cancelled.
	b, err := s.Isolate(ctx, nil, SimDB01, Full, "again")
	if err != nil {
		t.Fatalf("Isolate after cancel: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := s.CancelMachineAction(ctx, nil, b.ID, "late"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("cancel of a Succeeded action: err = %v, want ErrBadRequest", err)
	}
	if _, err := s.CancelMachineAction(ctx, nil, "00000000-0000-4000-8000-000000000000", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel of an unknown action: err = %v, want ErrNotFound", err)
	}
	if _, err := s.MachineAction(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown action: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Machine(ctx, "0000000000000000000000000000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown machine: err = %v, want ErrNotFound", err)
	}
}

// TestSimulatorConcurrentIsolate proves only one of many simultaneous
// isolations of a machine is accepted.
func TestSimulatorConcurrentIsolate(t *testing.T) {
	s, _ := newSim(t)
	var wg sync.WaitGroup
	results := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			_, err := s.Isolate(context.Background(), nil, SimKioskA, Full, "c")
			results <- err
		})
	}
	wg.Wait()
	close(results)
	ok, busy := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrAlreadyInProgress):
			busy++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || busy != 15 {
		t.Errorf("accepted %d, refused %d; want 1 and 15", ok, busy)
	}
}

// TestSimulatorGate proves the simulator asks the Gate like the client and
// does nothing when refused or when ctx is over.
func TestSimulatorGate(t *testing.T) {
	s, _ := newSim(t)
	gateErr := errors.New("limiter down")
	g := &countingGate{err: gateErr}
	s.Gate = g
	if _, err := s.Isolate(context.Background(), nil, SimWeb01, Full, "c"); !errors.Is(err, gateErr) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want the gate's error as ErrUnavailable", err)
	}
	g.mu.Lock()
	g.err = nil
	g.mu.Unlock()
	if acts, err := s.MachineActions(context.Background(), SimWeb01); err != nil || len(acts) != 0 {
		t.Errorf("a refused isolate created %d actions (%v)", len(acts), err)
	}
	if _, err := s.FindMachinesByName(context.Background(), "web-01"); err != nil {
		t.Fatal(err)
	}
	admits, _, _ := g.snapshot()
	want := []string{BudgetIsolate, BudgetMachineActions, BudgetMachines, BudgetMachines}
	if len(admits) != len(want) {
		t.Fatalf("admits = %v, want %v", admits, want)
	}
	for i := range want {
		if admits[i] != want[i] {
			t.Errorf("admits = %v, want %v", admits, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Machine(ctx, SimWeb01); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("cancelled ctx: err = %v", err)
	}
}

// TestSimulatorAddMachine proves callers can add devices for their tests.
func TestSimulatorAddMachine(t *testing.T) {
	s, _ := newSim(t)
	id := "abcdefabcdefabcdefabcdefabcdefabcdefabcd"
	if err := s.AddMachine(Machine{ID: id, ComputerDNSName: "dc-01.contoso.local", OnboardingStatus: "Onboarded"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMachine(Machine{ID: "x"}); err == nil {
		t.Error("AddMachine accepted a bad id")
	}
	if ms, _ := s.FindMachinesByName(context.Background(), "dc-01"); len(ms) != 1 || ms[0].ID != id {
		t.Errorf("added machine not found: %+v", ms)
	}
	if n := len(s.Machines()); n != 8 {
		t.Errorf("Machines() = %d, want 8", n)
	}
}
