package commands

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/soc/isolate-bot/store"
)

// Outbreak mode's decision and start: a bulk request is approved like any
// other (Approve's compare-and-set, two different approvers over
// BULK_TWO_APPROVERS_OVER machines); the approval that completes it starts
// a batch with the plan's entries (skipped ones with their reasons), and
// the request stays executing, its MachineActionID naming the batch, until
// the batch is finished (bulk_progress.go). Stop, offered while it runs,
// stops the batch's unsent rest.

// bulkLease is how long a replica's hold of a running bulk request lasts
// without renewal (CheckAt); the progress loop renews it on every update,
// so another replica's scheduler takes over only a dead replica's batch.
func (s *Service) bulkLease() time.Duration { return 6 * s.progressEvery() }

// startBulk runs approved (or stranded executing) bulk request r in the
// background on this replica: exactly one replica wins the claim.
func (s *Service) startBulk(r store.Request) {
	if !s.leases.runLocal(r.ID) {
		return
	}
	s.goBackground(func(ctx context.Context) {
		defer s.leases.doneLocal(r.ID)
		log := s.log.With().Str("request_id", r.ID).Logger()
		ctx = log.WithContext(ctx)
		r, ok := s.claimBulk(ctx, r)
		if !ok {
			return
		}
		if r.MachineActionID == "" {
			if r, ok = s.launchBatch(ctx, r); !ok {
				return
			}
		}
		s.watchBatch(ctx, r)
	})
}

// claimBulk moves r to executing (approved) or takes it over (executing,
// its holder's lease ran out), in one compare-and-set on its version.
func (s *Service) claimBulk(ctx context.Context, r store.Request) (store.Request, bool) {
	d, err := s.d.Approvals.Transition(ctx, r.ID, r.State, store.Change{To: store.Executing, By: systemActor,
		CheckAt: s.now().Add(s.bulkLease()), IfVersion: r.Version})
	if err != nil {
		s.logger(ctx).Info().Err(err).Msg("bulk request not claimed; another replica runs it or the store is down")
		return r, false
	}
	return d, true
}

// launchBatch starts the batch of r's plan and records its id on r.
func (s *Service) launchBatch(ctx context.Context, r store.Request) (store.Request, bool) {
	entries, err := s.drainer.plans.Plan(ctx, r.ID)
	if err != nil {
		s.logger(ctx).Error().Err(err).Msg("bulk request has no plan; failing it")
		s.finishBulk(ctx, r, store.Failed, "the machine list was lost: "+err.Error(), nil)
		return r, false
	}
	b, err := s.drainer.StartBatch(ctx, store.Batch{RequestID: r.ID, Command: r.Command, IsolationType: r.IsolationType,
		Comment: r.Comment, Requester: r.Requester, Approvers: r.ApprovedBy}, entries)
	if err != nil {
		// The scheduler retries once the lease (CheckAt) runs out.
		s.logger(ctx).Error().Err(err).Msg("could not start the batch; retrying later")
		return r, false
	}
	d, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing,
		MachineActionID: b.ID, CheckAt: s.now().Add(s.bulkLease()), IfVersion: r.Version})
	if err != nil {
		s.logger(ctx).Error().Err(err).Str("batch", b.ID).Msg("could not record the batch on the request")
		return r, false
	}
	s.audit(ctx, store.Event{RequestID: r.ID, Type: store.EventQueued, Actor: systemActor,
		Reason: fmt.Sprintf("batch %s started: %d machines, %d skipped", b.ID, b.Counts.Total, b.Counts.Skipped)})
	return d, true
}

// finishBulk ends r (executing) as to, with note, and audits it; the card
// shows batch b's final counts when known.
func (s *Service) finishBulk(ctx context.Context, r store.Request, to store.State, note string, b *store.Batch) {
	d, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: to, By: systemActor, Note: note})
	if err != nil {
		s.logger(ctx).Error().Err(err).Msg("could not finish the bulk request")
		return
	}
	s.updateBulkCard(ctx, d, b)
	ev := store.EventDone
	if to == store.Failed {
		ev = store.EventFailed
	}
	s.audit(ctx, store.Event{RequestID: r.ID, Type: ev, Actor: systemActor, Reason: note})
}

// stopBulk handles Stop on a running bulk request's card: the requester
// or an approver stops the batch; anyone else is refused privately (and
// audited).
func (s *Service) stopBulk(ctx context.Context, c Click, r store.Request) error {
	if !isBulk(r) || r.State != store.Executing || r.MachineActionID == "" {
		s.refuseClick(ctx, c, "", "stop: no batch running", msg(txt("Request "), code(r.ID), txt(" has no batch running; nothing was stopped.")))
		return nil
	}
	if c.User != r.Requester && !slices.Contains(r.ApprovedBy, c.User) {
		ok, err := s.mayDecideAs(ctx, c.User, s.cfg.Approvers)
		if !ok {
			why := "stop: not the requester or an approver"
			if err != nil {
				why = "stop: membership check failed: " + err.Error()
			}
			s.refuseClick(ctx, c, "", why, msg(txt("Only the requester or an approver can stop this batch; nothing was stopped.")))
			return nil
		}
	}
	b, err := s.drainer.StopBatch(ctx, r.MachineActionID, c.User)
	if err != nil {
		s.ephemeral(ctx, c.Channel, c.User, storeDownClick)
		return fmt.Errorf("stop %s: %w", r.MachineActionID, err)
	}
	s.logger(ctx).Info().Str("batch", b.ID).Int("not_sent", b.Counts.Queued).Msg("batch stopped")
	s.updateBulkCard(ctx, r, &b)
	return nil
}
