package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// The drain's one MDE call per entry, and the reconciling of reclaimed
// entries; classify (outcome.go) decides what each error means, as for a
// single request.

// slot takes budget's next free slot now. A refusal carries the exact time
// of the next free slot: sleep until then and ask again. False when the
// Service stops, stop ends or the limiter is down (after a pause).
func (d *Drainer) slot(stop, ctx context.Context, budget string) (*ratelimit.Ticket, bool) {
	for {
		t, err := d.gate.Reserve(ctx, budget)
		if err == nil {
			return t, true
		}
		var rl *RateLimitError
		if !errors.As(err, &rl) {
			d.s.logger(ctx).Warn().Err(err).Str("budget", budget).Msg("rate limiter unavailable; the drain pauses")
			d.s.waitUntil(stop, d.s.now().Add(d.s.leases.retrySoon()))
			return nil, false
		}
		if !d.s.waitUntil(stop, rl.At) {
			return nil, false
		}
	}
}

// entryRequest is e as the single-request helpers see it: its id is the
// entry's marker id ("b-3/17"), decided when the batch was created.
func entryRequest(b store.Batch, e store.BatchEntry) store.Request {
	return store.Request{ID: e.Marker(), Command: b.Command, MachineID: e.MachineID, HostName: e.HostName,
		IsolationType: b.IsolationType, Comment: b.Comment, Requester: b.Requester,
		DecidedBy: strings.Join(b.Approvers, " and "), DecidedAt: b.CreatedAt, State: store.Executing}
}

// send makes e's one MDE call with the slot t and records what happened.
// resent: an earlier claim may have called MDE (reconciling found no
// action); then a second unknown outcome fails the entry, as it fails a
// single request, rather than risk a third call.
func (d *Drainer) send(stop, ctx context.Context, b store.Batch, e store.BatchEntry, t *ratelimit.Ticket, resent bool) {
	defer t.Release() // a no-op once the Defender waited on it
	r := entryRequest(b, e)
	callCtx, cancel := context.WithTimeout(ctx, d.s.cfg.CallTimeout)
	defer cancel()
	comment := MDECommentVia(r, d.s.d.Transport)
	var a defender.MachineAction
	var err error
	if b.Command == store.Unisolate {
		a, err = d.s.d.Defender.Unisolate(callCtx, t, e.MachineID, comment)
	} else {
		a, err = d.s.d.Defender.Isolate(callCtx, t, e.MachineID, defender.IsolationType(b.IsolationType), comment)
	}
	calledAt := d.s.now()
	if err == nil {
		d.finish(ctx, b, e, store.EntrySent, a.ID, "", nil)
		return
	}
	if ctx.Err() != nil {
		// Killed or aborted mid-call: the claim's lease hands the entry
		// on, and the next owner reconciles before any call.
		return
	}
	o := classify(err, sendTry{unavailable: e.Attempt - 1, backoff: d.s.cfg.ResendBackoff})
	log := d.s.logger(ctx).With().Str("entry", e.Marker()).Str("machine", e.MachineID).Logger()
	switch o.verdict {
	case sendLater, backOff, handBack, stopped, notOurs:
		// Nothing reached MDE. A 429 is shared through the Gate (the
		// next slot waits for its Retry-After); an unreachable MDE pauses
		// this replica's drain.
		log.Warn().Err(err).Msg("batch entry not sent; back in the queue")
		d.requeue(ctx, e)
		if o.verdict == backOff {
			d.s.waitUntil(stop, calledAt.Add(o.after))
		}
	case reconcileFirst:
		d.unknown(ctx, b, e, calledAt, err, resent)
	case actionUnderWay:
		d.finish(ctx, b, e, store.EntryFailed, "", "MDE already has an action in progress for this machine; nothing new was sent.", asAPIError(err))
	default:
		d.finish(ctx, b, e, store.EntryFailed, "", o.why, asAPIError(err))
	}
}

// unknown holds e after a call whose outcome is unknown until MDE must
// list the action (Config.ReconcileChecks after the call); then its lease runs
// out and whichever replica reclaims it reconciles by the marker first.
func (d *Drainer) unknown(ctx context.Context, b store.Batch, e store.BatchEntry, calledAt time.Time, err error, resent bool) {
	d.s.logger(ctx).Warn().Err(err).Str("entry", e.Marker()).Msg("MDE did not confirm the call; reconciling by marker before any resend")
	if resent {
		d.finish(ctx, b, e, store.EntryFailed, "", "MDE did not confirm the call twice; check the MDE portal (Action center) for this machine.", asAPIError(err))
		return
	}
	if _, err := d.b.Extend(ctx, e, calledAt.Add(d.s.cfg.ReconcileChecks[len(d.s.cfg.ReconcileChecks)-1])); err != nil {
		d.s.logger(ctx).Warn().Err(err).Str("entry", e.Marker()).Msg("could not hold the entry for reconciling; its lease hands it on")
	}
}

// reclaim reconciles an entry whose previous claim ran out: MDE may have
// the action already (the marker finds it). Only if not, and the batch
// still runs, is the call sent, with a new slot.
func (d *Drainer) reclaim(stop, ctx context.Context, b store.Batch, e store.BatchEntry) bool {
	log := d.s.logger(ctx).With().Str("entry", e.Marker()).Str("machine", e.MachineID).Logger()
	log.Warn().Msg("reclaimed a batch entry whose claim ran out; reconciling with MDE before any call")
	a, found, err := d.s.findMarked(ctx, entryRequest(b, e))
	if err != nil {
		log.Warn().Err(err).Msg("could not read MDE's actions to reconcile; the lease hands the entry on")
		return false
	}
	if found {
		d.finish(ctx, b, e, store.EntrySent, a.ID, "", nil)
		return true
	}
	cur, err := d.b.GetBatch(ctx, b.ID)
	if err != nil {
		log.Warn().Err(err).Msg("could not read the batch; the lease hands the entry on")
		return false
	}
	if cur.State != store.BatchRunning {
		d.finish(ctx, b, e, store.EntrySkipped, "", "the batch was stopped before this machine's call was sent", nil)
		return true
	}
	t, ok := d.slot(stop, ctx, budgetFor(b.Command))
	if !ok {
		return false
	}
	// Renew the claim at the slot: nobody took the entry while we waited.
	if e, err = d.b.Extend(ctx, e, d.s.now().Add(d.s.leases.callLease())); err != nil {
		t.Release()
		log.Warn().Err(err).Msg("lost the entry while waiting for a slot; not sending")
		return false
	}
	d.send(stop, ctx, b, e, t, true)
	return true
}

func (d *Drainer) requeue(ctx context.Context, e store.BatchEntry) {
	if err := d.b.Requeue(ctx, e); err != nil {
		d.s.logger(ctx).Warn().Err(err).Str("entry", e.Marker()).Msg("could not requeue the entry; its lease hands it on")
	}
}

// finish records e's outcome and audits it under the batch's request.
func (d *Drainer) finish(ctx context.Context, b store.Batch, e store.BatchEntry, to store.EntryState, actionID, why string, apiErr *defender.APIError) {
	_, finished, err := d.b.Finish(ctx, e, to, actionID, why)
	if errors.Is(err, store.ErrLostClaim) {
		d.s.logger(ctx).Warn().Str("entry", e.Marker()).Msg("entry taken over by another replica; it reconciles")
		return
	}
	if err != nil {
		d.s.logger(ctx).Error().Err(err).Str("entry", e.Marker()).Msg("could not record the entry's outcome; whoever reclaims it reconciles")
		return
	}
	ev := store.Event{RequestID: b.RequestID, Type: store.EventMDECall, Actor: systemActor, MachineID: e.MachineID,
		Operation: string(b.Command), ActionID: actionID, Reason: fmt.Sprintf("batch %s: %s", e.Marker(), to)}
	if why != "" {
		ev.Reason += ": " + why
	}
	if apiErr != nil {
		ev.StatusCode, ev.CorrelationID = apiErr.Status, apiErr.Target
	}
	d.s.audit(ctx, ev)
	if finished {
		d.s.logger(ctx).Info().Str("batch", b.ID).Msg("batch finished")
	}
}
