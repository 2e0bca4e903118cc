package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// status runs /isolate status.
func (s *Service) status(ctx context.Context, inv Invocation, p Parsed) error {
	if !s.checkAllowed(ctx, inv, s.cfg.AllowedUsers, s.cfg.Approvers) {
		return nil
	}
	if p.RequestID != "" {
		r, err := s.d.Approvals.Get(ctx, p.RequestID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("There is no request "), code(p.RequestID), txt(".")))
			return nil
		case err != nil:
			s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("The state store is unavailable; try again shortly.")))
			return fmt.Errorf("get %s: %w", p.RequestID, err)
		}
		p.Machine, p.MachineIsID = r.MachineID, true
	}
	m, ok := s.resolve(ctx, inv, p)
	if !ok {
		return nil
	}
	out := msg(bold(hostOf(m)), txt(" ("), code(m.ID), txt("): "))
	acts, err := s.d.Defender.MachineActions(ctx, m.ID)
	if err != nil && !errors.Is(err, defender.ErrNotFound) {
		out.Spans = append(out.Spans, bold(StateUnknown), txt(" — I could not read MDE's actions: "+plain(describeMDEError(err))))
	} else {
		out = withState(out, deriveState(acts, s.now()))
	}
	r, err := s.d.Approvals.ForMachine(ctx, m.ID)
	switch {
	case err == nil:
		out.Spans = append(out.Spans, txt(" Request "), code(r.ID), txtf(" is %s", r.State))
		if r.MessageTS != "" {
			out.Spans = append(out.Spans, txt(" — "), threadLink(r, "see its thread"))
		}
		out.Spans = append(out.Spans, txt("."))
	case !errors.Is(err, store.ErrNotFound):
		out.Spans = append(out.Spans, txt(" (The state store is unavailable, so bot requests are not shown.)"))
	}
	s.ephemeral(ctx, inv.Channel, inv.User, out)
	return nil
}

// withState appends the machine's isolation state, and its last action, to m.
func withState(m Message, st isoState) Message {
	m.Spans = append(m.Spans, bold(st.State))
	if st.Why != "" {
		m.Spans = append(m.Spans, txt(" ("+st.Why+")"))
	}
	if st.Last == nil {
		m.Spans = append(m.Spans, txt(". No isolation actions on record."))
		return m
	}
	m.Spans = append(m.Spans, txtf(". Last action: %s %s, created %s.", st.Last.Type, st.Last.Status, hhmm(st.Last.CreationDateTimeUTC)))
	m.Action = st.Last
	return m
}

// Isolation states derived from MachineActions (MDE has no state field).
const (
	StateIsolated       = "Isolated"
	StateIsolationPend  = "Isolation pending"
	StateReleasePending = "Release pending"
	StateNotIsolated    = "Not isolated"
	StateUnknown        = "Unknown"
)

type isoState struct {
	State    string
	Why      string
	Last     *defender.MachineAction // newest Isolate/Unisolate action
	Decisive *defender.MachineAction // newest Succeeded one, which decides the state
}

// deriveState reads the machine's isolation state from its newest
// Isolate/Unisolate actions: a pending one wins, else the newest that
// succeeded. MDE never lifts an isolation by itself (it stays until someone
// releases it: mde-api.md, section 3), so a succeeded Isolate with no later
// release means isolated, however old.
func deriveState(acts []defender.MachineAction, now time.Time) isoState {
	var iso []defender.MachineAction
	for _, a := range acts {
		if strings.EqualFold(a.Type, "Isolate") || strings.EqualFold(a.Type, "Unisolate") {
			iso = append(iso, a)
		}
	}
	slices.SortStableFunc(iso, func(a, b defender.MachineAction) int { return b.CreationDateTimeUTC.Compare(a.CreationDateTimeUTC) })
	if len(iso) == 0 {
		return isoState{State: StateNotIsolated, Why: "no isolation on record"}
	}
	st := isoState{Last: &iso[0]}
	if !iso[0].Final() {
		st.State = StateIsolationPend
		if strings.EqualFold(iso[0].Type, "Unisolate") {
			st.State = StateReleasePending
		}
		return st
	}
	for i := range iso {
		if iso[i].Status != defender.StatusSucceeded {
			continue
		}
		st.Decisive = &iso[i]
		if strings.EqualFold(iso[i].Type, "Unisolate") {
			st.State = StateNotIsolated
			return st
		}
		st.State = StateIsolated
		return st
	}
	st.State, st.Why = StateNotIsolated, "no isolation succeeded"
	return st
}
