package defender

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// simAPIBase stands for the API URL when the simulator plans its look-ups
// like the client, so both make the same number of calls.
const simAPIBase = "https://api.security.microsoft.com"

// Actions lists every simulated action with its status as of now, newest
// first (for the fake MDE's filtered lists).
func (s *Simulator) Actions() []MachineAction {
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MachineAction, 0, len(s.actions))
	for i := len(s.actions) - 1; i >= 0; i-- {
		out = append(out, s.view(s.actions[i], now))
	}
	SortNewestFirst(out)
	return out
}

// admitEach stands for n look-up calls, each admitted like one HTTP call.
func (s *Simulator) admitEach(ctx context.Context, n int, op, budget string) error {
	for range n {
		if err := s.admit(ctx, nil, op, budget); err != nil {
			return err
		}
	}
	return nil
}

// MachineActionsByID is Client.MachineActionsByID in process.
func (s *Simulator) MachineActionsByID(ctx context.Context, ids []string) ([]MachineAction, error) {
	op := byIDOp(ids)
	keys, chunks, err := planByID(op, len(simAPIBase)+len(actionsPath), ids)
	if err != nil {
		return nil, err
	}
	if err := s.admitEach(ctx, len(chunks), op, BudgetMachineActions); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	out := []MachineAction{}
	for _, a := range s.Actions() {
		if want[strings.ToLower(a.ID)] {
			out = append(out, a)
		}
	}
	return out, nil
}

// ResolveMachines is Client.ResolveMachines in process, with the same
// number of admitted look-ups.
func (s *Simulator) ResolveMachines(ctx context.Context, refs []string) ([]Resolution, error) {
	op := resolveOp(refs)
	p := planResolve(refs)
	chunks, err := p.chunks(op, len(simAPIBase)+len("/api/machines"))
	if err != nil {
		return nil, err
	}
	if err := s.admitEach(ctx, len(chunks), op, BudgetMachines); err != nil {
		return nil, err
	}
	return p.resolutions(s.Machines(), nil), nil
}

// MachinesByTag is Client.MachinesByTag in process; tags compare
// case-insensitively.
func (s *Simulator) MachinesByTag(ctx context.Context, tag string) ([]Machine, error) {
	op := fmt.Sprintf("list machines tagged %q", truncate(tag, 80))
	if err := checkTag(tag); err != nil {
		return nil, badRequest(op, err.Error())
	}
	if err := s.admit(ctx, nil, op, BudgetMachines); err != nil {
		return nil, err
	}
	out := []Machine{}
	for _, m := range s.Machines() {
		if slices.ContainsFunc(m.MachineTags, func(t string) bool { return strings.EqualFold(t, tag) }) {
			out = append(out, m)
		}
	}
	return out, nil
}

// ActionsForMachines is Client.ActionsForMachines in process, including
// its chunks, $top and ErrTruncated.
func (s *Simulator) ActionsForMachines(ctx context.Context, machineIDs []string, top int) ([]MachineAction, error) {
	op := fmt.Sprintf("list actions of %d machines", len(machineIDs))
	p, err := planActions(op, len(simAPIBase)+len(actionsPath), machineIDs, top)
	if err != nil {
		return nil, err
	}
	all := s.Actions()
	out := []MachineAction{}
	for _, ch := range p.chunks {
		if err := s.admit(ctx, nil, op, BudgetMachineActions); err != nil {
			return nil, err
		}
		n, got := p.top*(ch.end-ch.first), 0
		for _, a := range all {
			if (a.Type == "Isolate" || a.Type == "Unisolate") && slices.Contains(p.keys[ch.first:ch.end], strings.ToLower(a.MachineID)) {
				out = append(out, a)
				got++
			}
		}
		if got >= n {
			return nil, actionsTruncated(op, n)
		}
	}
	SortNewestFirst(out)
	return out, nil
}

// ActionsSince is Client.ActionsSince in process: one admitted look-up,
// the type matched case-insensitively, since rounded down to the second
// as the client's filter is.
func (s *Simulator) ActionsSince(ctx context.Context, typ string, since time.Time) ([]MachineAction, error) {
	p, err := planSince(typ, since)
	if err != nil {
		return nil, err
	}
	if err := s.admit(ctx, nil, p.op, BudgetMachineActions); err != nil {
		return nil, err
	}
	out := []MachineAction{}
	for _, a := range s.Actions() { // newest first
		if strings.EqualFold(a.Type, typ) && !a.CreationDateTimeUTC.Before(p.since) {
			out = append(out, a)
		}
	}
	return out, nil
}
