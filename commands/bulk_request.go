package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/protect"
	"github.com/soc/isolate-bot/store"
)

// Outbreak mode's request stage (issue 11): /isolate with a list of
// machines or tag:<MDE tag>. The machines are resolved with batched reads
// (a few look-ups for the whole list, never one per machine); names that
// match nothing or several machines, protected machines under
// PROTECTED_MODE=refuse and machines already isolated or with an action
// under way are listed and left out; one pending request with one card
// asks for approval, and its plan (store: SavePlan) is what the batch
// sends once approved (bulk_decide.go).

// Plans keeps the machines of a pending bulk request until its decision.
// store.Batches and store.MemoryBatches implement it.
type Plans interface {
	SavePlan(ctx context.Context, requestID string, entries []store.BatchEntry) error
	Plan(ctx context.Context, requestID string) ([]store.BatchEntry, error)
}

// bulkPrefix marks the MachineID of a bulk request: it names no machine,
// so no single-machine flow (send, status) ever acts on it.
const bulkPrefix = "bulk:"

// isBulk reports whether r is a bulk request (its machines are in a plan).
func isBulk(r store.Request) bool { return strings.HasPrefix(r.MachineID, bulkPrefix) }

// bulkPreviewMachines is how many machines the card shows; the thread
// lists them all.
const bulkPreviewMachines = 5

// Skip reasons, in plain words (the summary groups by them).
const (
	skipUnknown   = "no machine has this name"
	skipAmbiguous = "several machines match"
	skipProtected = "protected machine (PROTECTED_MODE=refuse)"
	skipIsolated  = "already isolated"
	skipReleased  = "already released"
	skipUnderWay  = "an MDE action is under way"
)

// bulkPlan is what a bulk command resolved to.
type bulkPlan struct {
	entries   []store.BatchEntry // in order; skipped ones carry their reason
	machines  []defender.Machine // the machines to send, in order
	left      []store.BatchEntry // names left out before any machine was known (unknown, ambiguous)
	protected []string           // why, for each protected machine kept
}

func (b bulkPlan) queued() int { return len(b.machines) }

// bulkRequest runs a list or tag command up to its card.
func (s *Service) bulkRequest(ctx context.Context, inv Invocation, p Parsed) error {
	if !s.checkAllowed(ctx, inv, s.cfg.AllowedUsers) {
		return nil
	}
	if s.cfg.BulkMax <= 0 || s.drainer == nil {
		s.refuse(ctx, inv, "", "bulk not enabled",
			msg(txt("Several machines in one command is not enabled here; nothing was done. Isolate one machine per command.")))
		return nil
	}
	plan, ok := s.resolveBulk(ctx, inv, p)
	if !ok {
		return nil
	}
	if !s.precheckBulk(ctx, inv, p.Op, &plan) {
		return nil
	}
	if plan.queued() == 0 {
		m := msg(txtf("None of the machines can be %s now, so nothing was requested:", bulkVerb(p.Op)))
		m.Spans = append(m.Spans, skippedSpans(plan.entries)...)
		s.refuse(ctx, inv, "", "bulk: nothing to isolate", m)
		return nil
	}
	return s.createBulk(ctx, inv, p, plan)
}

// resolveBulk looks the machines up (ResolveMachines for a list,
// MachinesByTag for a tag) and applies BULK_MAX and the protection rules.
func (s *Service) resolveBulk(ctx context.Context, inv Invocation, p Parsed) (bulkPlan, bool) {
	var plan bulkPlan
	var found []defender.Machine
	if p.Tag != "" {
		ms, err := s.d.Defender.MachinesByTag(ctx, p.Tag)
		if err != nil {
			s.refuse(ctx, inv, "", "tag lookup failed: "+err.Error(), mdeLookupFailed("tag:"+p.Tag, err))
			return plan, false
		}
		found = ms
	} else {
		refs := make([]string, len(p.Machines))
		for i, m := range p.Machines {
			refs[i] = m.Machine
		}
		res, err := s.d.Defender.ResolveMachines(ctx, refs)
		if err != nil {
			s.refuse(ctx, inv, "", "machine lookup failed: "+err.Error(), mdeLookupFailed(fmt.Sprintf("%d machines", len(refs)), err))
			return plan, false
		}
		seen := map[string]bool{}
		for _, r := range res {
			switch r.Match() {
			case defender.MatchOne:
				m, _ := r.Machine()
				m.ID = strings.ToLower(m.ID)
				if !seen[m.ID] { // two names of one machine: one entry
					seen[m.ID] = true
					found = append(found, m)
				}
			case defender.MatchNone:
				plan.left = append(plan.left, store.BatchEntry{HostName: r.Ref, State: store.EntrySkipped, Reason: skipUnknown})
			default:
				plan.left = append(plan.left, store.BatchEntry{HostName: r.Ref, State: store.EntrySkipped,
					Reason: fmt.Sprintf("%s (%d)", skipAmbiguous, len(r.Machines))})
			}
		}
	}
	if len(found) > s.cfg.BulkMax {
		s.refuse(ctx, inv, "", fmt.Sprintf("bulk: %d machines over BULK_MAX %d", len(found), s.cfg.BulkMax),
			msg(txtf("That names %d machines; at most %d may be isolated in one command (BULK_MAX), so nothing was requested. Split the list.", len(found), s.cfg.BulkMax)))
		return plan, false
	}
	for _, m := range found {
		e := store.BatchEntry{MachineID: strings.ToLower(m.ID), HostName: hostOf(m), State: store.EntryQueued}
		// Releasing is never restricted; only isolation of a protected
		// machine needs two approvers or is refused.
		if hit, why := s.cfg.Protected.Match(protect.Of(m)); hit && p.Op == OpIsolate {
			if s.cfg.ProtectedMode == protect.Refuse {
				e.State, e.Reason = store.EntrySkipped, skipProtected
			} else {
				plan.protected = append(plan.protected, hostOf(m)+": "+why)
			}
		}
		plan.entries = append(plan.entries, e)
		if e.State == store.EntryQueued {
			plan.machines = append(plan.machines, m)
		}
	}
	plan.entries = append(plan.entries, plan.left...)
	return plan, true
}

// precheckBulk reads the recent actions of every machine to send, in one
// batched read, and skips machines already isolated or with an action
// under way. It returns false after refusing.
func (s *Service) precheckBulk(ctx context.Context, inv Invocation, op Op, plan *bulkPlan) bool {
	if len(plan.machines) == 0 {
		return true
	}
	ids := make([]string, len(plan.machines))
	for i, m := range plan.machines {
		ids[i] = strings.ToLower(m.ID)
	}
	acts, err := s.d.Defender.ActionsForMachines(ctx, ids, 0)
	if err != nil && !errors.Is(err, defender.ErrNotFound) {
		s.refuse(ctx, inv, "", "machine actions: "+err.Error(),
			msg(txt("I could not read MDE's recent actions of these machines, so nothing was requested: "), txt(plain(describeMDEError(err)))))
		return false
	}
	byMachine := map[string][]defender.MachineAction{}
	for _, a := range acts {
		id := strings.ToLower(a.MachineID)
		byMachine[id] = append(byMachine[id], a)
	}
	skip := map[string]string{}
	for _, id := range ids {
		st := deriveState(byMachine[id], s.now())
		switch {
		case st.Last != nil && !st.Last.Final():
			skip[id] = skipUnderWay
		case op == OpIsolate && st.State == StateIsolated:
			skip[id] = skipIsolated
		case op == OpUnisolate && releasedLast(st):
			// As for one machine: a release is refused only when MDE's
			// newest action is a succeeded release (its history may be
			// incomplete).
			skip[id] = skipReleased
		}
	}
	kept := plan.machines[:0]
	for _, m := range plan.machines {
		if skip[strings.ToLower(m.ID)] == "" {
			kept = append(kept, m)
		}
	}
	plan.machines = kept
	for i, e := range plan.entries {
		if why := skip[e.MachineID]; why != "" && e.State == store.EntryQueued {
			plan.entries[i].State, plan.entries[i].Reason = store.EntrySkipped, why
		}
	}
	return true
}

// createBulk creates the pending request, saves its plan and posts its
// card and the full list in its thread.
func (s *Service) createBulk(ctx context.Context, inv Invocation, p Parsed, plan bulkPlan) error {
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	cmd := store.Isolate
	if p.Op == OpUnisolate {
		cmd = store.Unisolate
	}
	r := store.Request{
		Command: cmd, MachineID: bulkPrefix + hex.EncodeToString(tok[:]),
		HostName: fmt.Sprintf("%d machines", plan.queued()),
		Comment:  p.Comment, Requester: inv.User, Channel: inv.Channel, State: store.Pending,
		IsolationType: string(p.Type), ExpiresAt: s.now().Add(s.cfg.ApprovalTTL),
	}
	if plan.queued() > s.cfg.BulkTwoApproversOver || len(plan.protected) > 0 {
		r.Needs = protectedApprovers
	}
	if len(plan.protected) > 0 {
		r.Protected = strings.Join(plan.protected, "; ")
	}
	r, err := s.d.Approvals.Create(ctx, r)
	if err != nil {
		s.refuse(ctx, inv, "", "state store: "+err.Error(), storeDownMessage)
		return fmt.Errorf("create bulk request: %w", err)
	}
	ctx = s.logger(ctx).With().Str("request_id", r.ID).Logger().WithContext(ctx)
	if err := s.drainer.plans.SavePlan(ctx, r.ID, plan.entries); err != nil {
		s.cancelBySystem(ctx, r, "the machine list could not be stored")
		s.ephemeral(ctx, inv.Channel, inv.User, storeDownMessage)
		return fmt.Errorf("save plan of %s: %w", r.ID, err)
	}
	if r, err = s.postBulkCard(ctx, inv, r, plan.machines); err != nil {
		return err
	}
	s.reply(ctx, r, bulkListMessage(plan.entries))
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventCreated, Actor: inv.User,
		Reason: fmt.Sprintf("%s %s of %d machines (%d left out); needs %d approvers", r.Command, r.IsolationType, plan.queued(), len(plan.entries)-plan.queued(), r.Required())})
	s.logger(ctx).Info().Int("machines", plan.queued()).Msg("bulk request created")
	return nil
}

// postBulkCard posts r's card with the first machines and records its ts;
// on failure r is withdrawn and the requester told.
func (s *Service) postBulkCard(ctx context.Context, inv Invocation, r store.Request, ms []defender.Machine) (store.Request, error) {
	c := s.bulkCard(r, nil)
	c.Bulk.Preview = ms[:min(len(ms), bulkPreviewMachines)]
	ts, err := s.d.Messenger.PostCard(ctx, inv.Channel, c)
	if err == nil {
		var d store.Request
		d, err = s.d.Approvals.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Pending, MessageTS: ts, Channel: inv.Channel})
		if cur, ok := lost(err); ok && cur.MessageTS == ts {
			d, err = cur, nil
		}
		if err == nil {
			return d, nil
		}
	}
	s.cancelBySystem(ctx, r, "the card could not be posted or recorded: "+err.Error())
	s.ephemeral(ctx, inv.Channel, inv.User, msg(txt("I could not post or record the request card here, so request "), code(r.ID), txt(" was cancelled; try again shortly.")))
	return r, fmt.Errorf("post bulk card for %s: %w", r.ID, err)
}

// bulkVerb is what a bulk command does to each machine, for its messages.
func bulkVerb(op Op) string {
	if op == OpUnisolate {
		return "released"
	}
	return "isolated"
}

// releasedLast reports whether MDE's newest succeeded action of the
// machine is a release: nothing to release.
func releasedLast(st isoState) bool {
	return st.Decisive != nil && strings.EqualFold(st.Decisive.Type, "Unisolate")
}
