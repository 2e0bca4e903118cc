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

// Command handles one slash command. Everything the user must know is sent
// through the Messenger; the returned error is for the transport's log.
// Refusals (syntax, permissions, state) are not errors.
func (s *Service) Command(ctx context.Context, inv Invocation) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	log := s.log.With().Str("command", inv.Command).Str("user", inv.User).Str("channel", inv.Channel).Str("delivery_id", inv.RequestID).Logger()
	ctx = log.WithContext(ctx)

	p, err := Parse(inv.Command, inv.Text)
	if err != nil {
		var ue *UsageError
		if !errors.As(err, &ue) {
			return err
		}
		s.refuse(ctx, inv, "", "syntax: "+ue.Problem, usageMessage(ue))
		return nil
	}
	switch p.Op {
	case OpHelp:
		s.ephemeral(ctx, inv.Channel, inv.User, helpMessage(s.d.Version))
		return nil
	case OpStatus:
		return s.status(ctx, inv, p)
	case OpCancel:
		return s.cancel(ctx, inv, p)
	}
	return s.request(ctx, inv, p)
}

// refuse tells the caller why nothing happened and audits it. Before a
// request exists the audit entry is keyed by the delivery or trigger id.
func (s *Service) refuse(ctx context.Context, inv Invocation, machineID, reason string, m Message) {
	key := inv.RequestID
	if key == "" {
		key = inv.TriggerID
	}
	s.logger(ctx).Info().Str("machine", machineID).Str("reason", reason).Msg("command refused")
	s.ephemeral(ctx, inv.Channel, inv.User, m)
	s.audit(ctx, store.Event{RequestID: key, Type: store.EventRefused, Actor: inv.User, MachineID: machineID, Reason: reason})
}

var storeDownMessage = msg(txt("The state store is unavailable, nothing was requested; try again shortly."))

// checkAllowed runs the caller and channel checks. It returns false after
// refusing.
func (s *Service) checkAllowed(ctx context.Context, inv Invocation, lists ...[]string) bool {
	var ids []string
	for _, l := range lists {
		ids = append(ids, l...)
	}
	ok, err := s.isMember(ctx, inv.User, ids)
	if err != nil && !ok {
		s.refuse(ctx, inv, "", "membership check failed: "+err.Error(),
			msg(txt("I could not check your user-group membership with Slack, so nothing was done (fail closed); try again shortly.")))
		return false
	}
	if !ok {
		s.refuse(ctx, inv, "", "user not allowed",
			msg(txt("You are not allowed to use this command. Ask the SOC lead to add you (or a user group you are in) to the allowed users.")))
		return false
	}
	if len(s.cfg.AllowedChannels) > 0 && !slices.Contains(s.cfg.AllowedChannels, inv.Channel) {
		s.refuse(ctx, inv, "", "channel not allowed",
			msg(txt("This command is not allowed in this channel; use one of the SOC channels: "), channelList(s.cfg.AllowedChannels)))
		return false
	}
	return true
}

func channelList(ids []string) Span {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id
	}
	return code(strings.Join(parts, ", "))
}

// resolve finds the one machine p names. On failure it has already refused.
func (s *Service) resolve(ctx context.Context, inv Invocation, p Parsed) (defender.Machine, bool) {
	if p.MachineIsID {
		m, err := s.d.Defender.Machine(ctx, p.Machine)
		switch {
		case errors.Is(err, defender.ErrNotFound):
			s.refuse(ctx, inv, p.Machine, "unknown machine id",
				msg(txt("There is no device with id "), code(p.Machine), txt(" in MDE (or it is outside MDE's retention); check the id in the MDE portal.")))
			return m, false
		case err != nil:
			s.refuse(ctx, inv, p.Machine, "machine lookup failed: "+err.Error(), mdeLookupFailed(p.Machine, err))
			return m, false
		}
		if m.ID == "" {
			m.ID = p.Machine
		}
		m.ID = strings.ToLower(m.ID)
		return m, true
	}
	ms, err := s.d.Defender.FindMachinesByName(ctx, p.Machine)
	if err != nil && !errors.Is(err, defender.ErrNotFound) {
		s.refuse(ctx, inv, "", "machine lookup failed: "+err.Error(), mdeLookupFailed(p.Machine, err))
		return defender.Machine{}, false
	}
	switch len(ms) {
	case 0:
		s.refuse(ctx, inv, "", "unknown host name "+p.Machine,
			msg(txt("There is no device named "), code(p.Machine), txt(" in MDE; check the name, or use the 40-character machine id from the MDE portal.")))
		return defender.Machine{}, false
	case 1:
		m := ms[0]
		m.ID = strings.ToLower(m.ID)
		return m, true
	}
	m := msg(txtf("%d devices in MDE match ", len(ms)), code(p.Machine), txt("; I will not guess. Repeat the command with the machine id of the right one:"))
	m.Machines = ms
	s.refuse(ctx, inv, "", fmt.Sprintf("ambiguous host name %s (%d devices)", p.Machine, len(ms)), m)
	return defender.Machine{}, false
}

func mdeLookupFailed(what string, err error) Message {
	why := describeMDEError(err)
	if errors.Is(err, defender.ErrForbidden) {
		why = "The Azure app lacks the Machine.Read.All application permission (admin consent needed)."
	}
	return msg(txt("I could not look up "), code(what), txt(" in MDE, so nothing was requested: "), txt(plain(why)))
}

// request runs /isolate and /unisolate up to the card.
func (s *Service) request(ctx context.Context, inv Invocation, p Parsed) error {
	if !s.checkAllowed(ctx, inv, s.cfg.AllowedUsers) {
		return nil
	}
	m, ok := s.resolve(ctx, inv, p)
	if !ok {
		return nil
	}
	log := s.logger(ctx).With().Str("machine", m.ID).Logger()
	ctx = log.WithContext(ctx)
	host := m.ComputerDNSName
	if host == "" {
		host = m.ID
	}

	// An open request for the machine?
	open, err := s.d.Approvals.ForMachine(ctx, m.ID)
	switch {
	case err == nil && !open.State.Terminal():
		s.refuse(ctx, inv, m.ID, "open request "+open.ID, openRequestMessage(open))
		return nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		s.refuse(ctx, inv, m.ID, "state store: "+err.Error(), storeDownMessage)
		return fmt.Errorf("look up open requests for %s: %w", m.ID, err)
	}

	// What does MDE say about the machine right now?
	acts, err := s.d.Defender.MachineActions(ctx, m.ID)
	if err != nil && !errors.Is(err, defender.ErrNotFound) {
		s.refuse(ctx, inv, m.ID, "machine actions: "+err.Error(),
			msg(txt("I could not read MDE's recent actions for "), code(host), txt(", so nothing was requested: "), txt(plain(describeMDEError(err)))))
		return nil
	}
	st := deriveState(acts, s.now())
	if st.Last != nil && !st.Last.Final() {
		out := msg(txt("MDE already has an action in progress for "), code(host), txtf(": %s (%s)", st.Last.Type, st.Last.Status),
			txtf(" since %s; wait for it to finish (see ", hhmm(st.Last.CreationDateTimeUTC)), code(UsageStatus), txt(")."))
		out.Action = st.Last
		s.refuse(ctx, inv, m.ID, "MDE action "+st.Last.ID+" "+st.Last.Status, out)
		return nil
	}
	if p.Op == OpIsolate && st.State == StateIsolated {
		out := msg(code(host), txtf(" is already isolated (MDE's isolation of %s succeeded); nothing was requested.", hhmm(st.Decisive.CreationDateTimeUTC)))
		out.Action = st.Decisive
		s.refuse(ctx, inv, m.ID, "already isolated", out)
		return nil
	}
	if p.Op == OpUnisolate && st.State == StateNotIsolated {
		out := msg(code(host), txt(" is not isolated according to MDE's actions, so there is nothing to release; nothing was requested."))
		out.Action = st.Decisive
		s.refuse(ctx, inv, m.ID, "not isolated", out)
		return nil
	}

	req := store.Request{
		Command:   store.Isolate,
		MachineID: m.ID,
		HostName:  m.ComputerDNSName,
		Comment:   p.Comment,
		Requester: inv.User,
		Channel:   inv.Channel,
		State:     store.Pending,
		ExpiresAt: s.now().Add(s.cfg.ApprovalTTL),
	}
	if p.Op == OpUnisolate {
		req.Command = store.Unisolate
	} else {
		req.IsolationType = string(p.Type)
	}
	r, err := s.d.Approvals.Create(ctx, req)
	var pe *store.PendingError
	switch {
	case errors.As(err, &pe):
		s.refuse(ctx, inv, m.ID, "open request "+pe.Existing.ID, openRequestMessage(pe.Existing))
		return nil
	case err != nil:
		s.refuse(ctx, inv, m.ID, "state store: "+err.Error(), storeDownMessage)
		return fmt.Errorf("create request for %s: %w", m.ID, err)
	}
	log = log.With().Str("request_id", r.ID).Logger()
	ctx = log.WithContext(ctx)

	ts, err := s.d.Messenger.PostCard(ctx, inv.Channel, Card{Request: r, Machine: m, Approvers: s.cfg.Approvers})
	if err != nil {
		why := "the card could not be posted: " + err.Error()
		tell := msg(txt("I could not post the request card here, so request "), code(r.ID), txt(" was cancelled; try again shortly."))
		if errors.Is(err, ErrNotInChannel) {
			why = "the bot is not in the channel"
			tell = msg(txt("I am not a member of this channel, so I cannot post the request card; request "), code(r.ID),
				txt(" was cancelled. Run "), code("/invite @isolate-bot"), txt(" here and request again."))
		}
		s.cancelBySystem(ctx, r, why)
		s.ephemeral(ctx, inv.Channel, inv.User, tell)
		return fmt.Errorf("post card for %s: %w", r.ID, err)
	}
	r2, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Pending, MessageTS: ts, Channel: inv.Channel})
	var ce *store.ConflictError
	if errors.As(err, &ce) && ce.Current.MessageTS == ts {
		// A fast approver decided before we recorded the card; the click
		// recorded the same ts, so the thread is intact.
		r2, err = ce.Current, nil
	}
	if err != nil {
		// Without the card's ts nobody could follow the request: withdraw it.
		r.MessageTS, r.Channel = ts, inv.Channel
		if c, ok := s.cancelBySystem(ctx, r, "the card could not be recorded"); ok {
			s.updateCard(ctx, c)
		}
		s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("The state store failed after posting the card, so request "), code(r.ID), txt(" was withdrawn; try again shortly.")))
		return fmt.Errorf("record card of %s: %w", r.ID, err)
	}
	r = r2

	created := msg(txt("Request "), code(r.ID), txtf(" (%s of ", commandVerb(r.Command)), code(host), txt(") created by "), who(r.Requester), txt("; approvers: "))
	created.Spans = append(created.Spans, joinApprovers(s.cfg.Approvers)...)
	created.Spans = append(created.Spans, txtf("; expires %s.", hhmm(r.ExpiresAt)))
	s.reply(ctx, r, created)
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventCreated, Actor: inv.User, MachineID: r.MachineID,
		Reason: fmt.Sprintf("%s %s", r.Command, r.IsolationType)})
	log.Info().Msg("request created")
	return nil
}

// cancelBySystem withdraws a pending request the bot cannot carry on with.
func (s *Service) cancelBySystem(ctx context.Context, r store.Request, why string) (store.Request, bool) {
	c, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Cancelled, By: systemActor, Note: why})
	if err != nil {
		s.logger(ctx).Error().Err(err).Str("request_id", r.ID).Msg("could not cancel request; it will expire")
		return r, false
	}
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventCancelled, Actor: systemActor, MachineID: r.MachineID, Reason: why})
	return c, true
}

// cancel runs /isolate cancel r-N.
func (s *Service) cancel(ctx context.Context, inv Invocation, p Parsed) error {
	r, err := s.d.Approvals.Get(ctx, p.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.refuse(ctx, inv, "", "unknown request "+p.RequestID, msg(txt("There is no request "), code(p.RequestID), txt(".")))
		return nil
	case err != nil:
		s.refuse(ctx, inv, "", "state store: "+err.Error(), msg(txt("The state store is unavailable, nothing was cancelled; try again shortly.")))
		return fmt.Errorf("get %s: %w", p.RequestID, err)
	}
	if inv.User != r.Requester {
		ok, err := s.isMember(ctx, inv.User, s.cfg.Approvers)
		if !ok {
			reason := "not requester or approver"
			if err != nil {
				reason = "membership check failed: " + err.Error()
			}
			s.refuse(ctx, inv, r.MachineID, reason, msg(txt("Only the requester ("), who(r.Requester), txt(") or an approver can cancel "), code(r.ID), txt(".")))
			return nil
		}
	}
	if r.State != store.Pending {
		s.refuse(ctx, inv, r.MachineID, "not pending", withOnlyPending(decidedMessage(r)))
		return nil
	}
	c, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Cancelled, By: inv.User, Note: "cancelled with /isolate cancel"})
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		s.refuse(ctx, inv, r.MachineID, "not pending", withOnlyPending(decidedMessage(ce.Current)))
		return nil
	case err != nil:
		s.refuse(ctx, inv, r.MachineID, "state store: "+err.Error(), msg(txt("The state store is unavailable, nothing was cancelled; try again shortly.")))
		return fmt.Errorf("cancel %s: %w", r.ID, err)
	}
	s.updateCard(ctx, c)
	s.reply(ctx, c, msg(txt("Cancelled by "), who(inv.User), txt(" before a decision; nothing was sent to MDE.")))
	s.audit(ctx, store.Event{RequestID: c.ID, Type: store.EventCancelled, Actor: inv.User, MachineID: c.MachineID, Reason: "cancelled by command"})
	s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("Request "), code(c.ID), txt(" is cancelled.")))
	return nil
}

func withOnlyPending(m Message) Message {
	m.Spans = append(m.Spans, txt(" Only pending requests can be cancelled."))
	return m
}

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
	host := m.ComputerDNSName
	if host == "" {
		host = m.ID
	}
	out := msg(bold(host), txt(" ("), code(m.ID), txt("): "))
	acts, err := s.d.Defender.MachineActions(ctx, m.ID)
	if err != nil && !errors.Is(err, defender.ErrNotFound) {
		out.Spans = append(out.Spans, bold(StateUnknown), txt(" — I could not read MDE's actions: "+plain(describeMDEError(err))))
	} else {
		st := deriveState(acts, s.now())
		out.Spans = append(out.Spans, bold(st.State))
		if st.Why != "" {
			out.Spans = append(out.Spans, txt(" ("+st.Why+")"))
		}
		if st.Last != nil {
			out.Spans = append(out.Spans, txtf(". Last action: %s %s, created %s.", st.Last.Type, st.Last.Status, hhmm(st.Last.CreationDateTimeUTC)))
			out.Action = st.Last
		} else {
			out.Spans = append(out.Spans, txt(". No isolation actions on record."))
		}
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

// Isolation states derived from MachineActions (MDE has no state field).
const (
	StateIsolated       = "Isolated"
	StateIsolationPend  = "Isolation pending"
	StateReleasePending = "Release pending"
	StateNotIsolated    = "Not isolated"
	StateUnknown        = "Unknown"
)

// autoRelease: MDE lifts isolation by itself after seven days.
const autoRelease = 7 * 24 * time.Hour

type isoState struct {
	State    string
	Why      string
	Last     *defender.MachineAction // newest Isolate/Unisolate action
	Decisive *defender.MachineAction // newest Succeeded one, which decides the state
}

// deriveState reads the machine's isolation state from its newest
// Isolate/Unisolate actions: a pending one wins, else the newest that
// succeeded. A successful isolation older than MDE's 7-day auto-release
// is Unknown.
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
		if now.Sub(iso[i].CreationDateTimeUTC) > autoRelease {
			st.State, st.Why = StateUnknown, "isolated more than 7 days ago; MDE may have lifted it"
			return st
		}
		st.State = StateIsolated
		return st
	}
	st.State, st.Why = StateNotIsolated, "no isolation succeeded"
	return st
}
