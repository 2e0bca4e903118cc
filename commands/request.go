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

// The request stage: /isolate and /unisolate, from the slash command to a
// pending request with its card (parse → allow-list → resolve the machine →
// check it is free → create → post the card).

// Command handles one slash command. Everything the user must know is sent
// through the Messenger; the returned error is for the transport's log.
// Refusals (syntax, permissions, state) are not errors.
func (s *Service) Command(ctx context.Context, inv Invocation) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	log := s.log.With().Str("command", inv.Command).Str("user", inv.User).Str("channel", inv.Channel).Str("delivery_id", inv.DeliveryID).Logger()
	ctx = log.WithContext(ctx)
	if s.silenced(ctx, inv.User) {
		// Told "slow down" already: no work (no Slack or MDE look-ups) and
		// no reply until the window ends.
		log.Debug().Msg("command ignored: too many refusals")
		return nil
	}

	p, err := Parser{BulkMax: s.cfg.BulkMax}.Parse(inv.Command, inv.Text)
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
	if p.Bulk() {
		return s.bulkRequest(ctx, inv, p) // outbreak mode: bulk_request.go
	}
	return s.request(ctx, inv, p)
}

// refuse tells the caller why nothing happened and audits it, unless the
// caller's refusals are throttled (throttle.go). A refusal has no request,
// so it goes only to the capped global audit stream: a flood of refused
// commands never creates keys kept for AUDIT_RETENTION.
func (s *Service) refuse(ctx context.Context, inv Invocation, machineID, reason string, m Message) {
	log := s.logger(ctx)
	switch s.countRefusal(ctx, inv.User) {
	case refusalSilent:
		log.Debug().Str("reason", reason).Msg("command refused silently: too many refusals")
		return
	case refusalSlowDown:
		log.Warn().Str("machine", machineID).Str("reason", reason).Msg("command refused; ignoring this user's commands for a while")
		reason, m = throttledPrefix+reason, s.slowDownMessage()
	default:
		log.Info().Str("machine", machineID).Str("reason", reason).Msg("command refused")
	}
	s.ephemeral(ctx, inv.Channel, inv.User, m)
	s.audit(ctx, store.Event{Type: store.EventRefused, Actor: inv.User, MachineID: machineID, Reason: reason})
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
			msg(txt("This command is not allowed in this channel; use one of the SOC channels: "), code(strings.Join(s.cfg.AllowedChannels, ", "))))
		return false
	}
	return true
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
	protected, ok := s.protection(ctx, inv, p, m)
	if !ok {
		return nil
	}
	ctx = s.logger(ctx).With().Str("machine", m.ID).Logger().WithContext(ctx)
	if !s.checkType(ctx, inv, p, m) {
		return nil
	}
	warning, ok, err := s.checkFree(ctx, inv, p, m)
	if !ok {
		return err
	}
	r, err := s.d.Approvals.Create(ctx, guard(newRequest(inv, p, m, s.now().Add(s.cfg.ApprovalTTL)), protected))
	var pe *store.PendingError
	switch {
	case errors.As(err, &pe):
		s.refuse(ctx, inv, m.ID, "open request "+pe.Existing.ID, openRequestMessage(pe.Existing))
		return nil
	case err != nil:
		s.refuse(ctx, inv, m.ID, "state store: "+err.Error(), storeDownMessage)
		return fmt.Errorf("create request for %s: %w", m.ID, err)
	}
	log := s.logger(ctx).With().Str("request_id", r.ID).Logger()
	ctx = log.WithContext(ctx)
	if r, err = s.postCard(ctx, inv, r, m); err != nil {
		return err
	}
	created := msg(txt("Request "), code(r.ID), txtf(" (%s of ", commandVerb(r.Command)), code(hostOf(m)), txt(") created by "), who(r.Requester), txt("; approvers: "))
	created.Spans = append(created.Spans, joinApprovers(s.cfg.Approvers)...)
	created.Spans = append(created.Spans, txtf("; expires %s.", hhmm(r.ExpiresAt)))
	created.Spans = append(created.Spans, protectedNote(r)...)
	s.reply(ctx, r, created)
	if warning != nil {
		s.reply(ctx, r, *warning)
	}
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventCreated, Actor: inv.User, MachineID: r.MachineID,
		Reason: fmt.Sprintf("%s %s", r.Command, r.IsolationType)})
	log.Info().Msg("request created")
	return nil
}

// newRequest is the pending request p asks for on machine m.
func newRequest(inv Invocation, p Parsed, m defender.Machine, expires time.Time) store.Request {
	r := store.Request{
		Command:   store.Isolate,
		MachineID: m.ID,
		HostName:  m.ComputerDNSName,
		Comment:   p.Comment,
		Requester: inv.User,
		Channel:   inv.Channel,
		State:     store.Pending,
		ExpiresAt: expires,
	}
	if p.Op == OpUnisolate {
		r.Command = store.Unisolate
	} else {
		r.IsolationType = string(p.Type)
	}
	return r
}

// hostOf names a machine for people: its DNS name, else its id.
func hostOf(m defender.Machine) string {
	if m.ComputerDNSName != "" {
		return m.ComputerDNSName
	}
	return m.ID
}

// checkFree refuses when the machine has an open request, or MDE's actions
// say the request makes no sense now (an action under way, already
// isolated, released last). A release with no isolation on record is
// allowed with a warning for its thread (MDE's history can be
// incomplete). The error is for the transport's log.
func (s *Service) checkFree(ctx context.Context, inv Invocation, p Parsed, m defender.Machine) (warning *Message, ok bool, err error) {
	open, err := s.d.Approvals.ForMachine(ctx, m.ID)
	switch {
	case err == nil && !open.State.Terminal():
		s.refuse(ctx, inv, m.ID, "open request "+open.ID, openRequestMessage(open))
		return nil, false, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		s.refuse(ctx, inv, m.ID, "state store: "+err.Error(), storeDownMessage)
		return nil, false, fmt.Errorf("look up open requests for %s: %w", m.ID, err)
	}
	host := hostOf(m)
	acts, err := s.d.Defender.MachineActions(ctx, m.ID)
	if err != nil && !errors.Is(err, defender.ErrNotFound) {
		s.refuse(ctx, inv, m.ID, "machine actions: "+err.Error(),
			msg(txt("I could not read MDE's recent actions for "), code(host), txt(", so nothing was requested: "), txt(plain(describeMDEError(err)))))
		return nil, false, nil
	}
	st := deriveState(acts, s.now())
	var reason string
	var out Message
	switch {
	case st.Last != nil && !st.Last.Final():
		reason = "MDE action " + st.Last.ID + " " + st.Last.Status
		out = msg(txt("MDE already has an action in progress for "), code(host), txtf(": %s (%s)", st.Last.Type, st.Last.Status),
			txtf(" since %s; wait for it to finish (see ", hhmm(st.Last.CreationDateTimeUTC)), code(UsageStatus), txt(")."))
		out.Action = st.Last
	case p.Op == OpIsolate && st.State == StateIsolated:
		reason = "already isolated"
		out = msg(code(host), txtf(" is already isolated (MDE's isolation of %s succeeded); nothing was requested.", hhmm(st.Decisive.CreationDateTimeUTC)))
		out.Action = st.Decisive
	case p.Op == OpUnisolate && st.Last != nil && strings.EqualFold(st.Last.Type, "Unisolate") && st.Last.Status == defender.StatusSucceeded:
		reason = "already released"
		out = msg(code(host), txtf(" was released from isolation at %s (MDE's newest action), so there is nothing to release; nothing was requested.", hhmm(st.Last.CreationDateTimeUTC)))
		out.Action = st.Last
	case p.Op == OpUnisolate && st.State != StateIsolated:
		w := noIsolationWarning(st)
		return &w, true, nil
	default:
		return nil, true, nil
	}
	s.refuse(ctx, inv, m.ID, reason, out)
	return nil, false, nil
}

// postCard posts r's card and records its ts, the root of the audit
// thread. If either fails the request is withdrawn and the user told; the
// error is for the transport's log.
func (s *Service) postCard(ctx context.Context, inv Invocation, r store.Request, m defender.Machine) (store.Request, error) {
	ts, err := s.d.Messenger.PostCard(ctx, inv.Channel, s.card(r, m, nil))
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
		return r, fmt.Errorf("post card for %s: %w", r.ID, err)
	}
	r2, err := s.d.Approvals.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Pending, MessageTS: ts, Channel: inv.Channel})
	if cur, ok := lost(err); ok && cur.MessageTS == ts {
		// A fast approver decided before we recorded the card; the click
		// recorded the same ts, so the thread is intact.
		r2, err = cur, nil
	}
	if err != nil {
		// Without the card's ts nobody could follow the request: withdraw it.
		r.MessageTS, r.Channel = ts, inv.Channel
		if c, ok := s.cancelBySystem(ctx, r, "the card could not be recorded"); ok {
			s.updateCard(ctx, c)
		}
		s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("The state store failed after posting the card, so request "), code(r.ID), txt(" was withdrawn; try again shortly.")))
		return r, fmt.Errorf("record card of %s: %w", r.ID, err)
	}
	return r2, nil
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
