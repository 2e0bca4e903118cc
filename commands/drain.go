package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Outbreak mode's execution (issue 11): an approved bulk command becomes a
// durable batch (store.Batches), one queue entry per machine, and every
// replica's drain loop sends them at exactly the rate limiter's pace:
//
//  1. take the budget's next free slot with maxWait 0 (refused: sleep until
//     the refusal's exact At, then ask again). An interactive request
//     reserves with a positive maxWait, a FIFO reservation, so it gets the
//     next free slot before any batch item: an outbreak never blocks the
//     one urgent isolation;
//  2. claim the next entry (exactly one replica gets it);
//  3. send one MDE call with the slot and record its outcome.
//
// A claim whose lease ran out (its replica died, or the call's outcome was
// unknown) comes back Reclaimed, and is reconciled with MDE by its marker
// ("[isolate-bot b-3/17]" starts the comment) before anything is sent
// again: one MDE call per machine across replicas and restarts.

// Batches is the durable batch store as the drain uses it.
// store.Batches (Redis) and store.MemoryBatches implement it.
type Batches interface {
	CreateBatch(ctx context.Context, b store.Batch, entries []store.BatchEntry) (store.Batch, error)
	GetBatch(ctx context.Context, id string) (store.Batch, error)
	Entries(ctx context.Context, id string) ([]store.BatchEntry, error)
	Running(ctx context.Context) ([]string, error)
	Forget(ctx context.Context, id string) error
	Claim(ctx context.Context, id, owner string, lease time.Duration) (store.BatchEntry, error)
	Extend(ctx context.Context, e store.BatchEntry, until time.Time) (store.BatchEntry, error)
	Requeue(ctx context.Context, e store.BatchEntry) error
	Finish(ctx context.Context, e store.BatchEntry, to store.EntryState, actionID, reason string) (store.BatchEntry, bool, error)
	Stop(ctx context.Context, id, by string) (store.Batch, bool, error)
	RecordResults(ctx context.Context, id string, rs []store.ActionResult) ([]store.BatchEntry, error)
	ClaimReply(ctx context.Context, id, name string) (bool, error)
}

// DrainDeps are what a Drainer needs besides its Service.
type DrainDeps struct {
	Batches Batches
	// Gate must refuse rather than queue (ratelimit.NewGate with maxWait
	// 0) over the same limiter as the Service's Gate: its refusal carries
	// the exact time of the next free slot.
	Gate Gate
	// Owner names this replica in claims; empty: a random id.
	Owner string
	// Plans keeps pending bulk requests' machines (bulk_request.go).
	Plans Plans
	// OwnOnly: no drain loop (Start is not called); each batch StartBatch
	// starts is drained by background work of its own until it has
	// nothing left to send. The console: it must never take over a bot's
	// batches in a shared Redis, and its end-of-input wait (Service.Wait)
	// covers its batches.
	OwnOnly bool
}

// Drainer runs the drain loop of one replica and starts, stops and reads
// batches. Safe for concurrent use.
type Drainer struct {
	s     *Service
	b     Batches
	gate  Gate
	owner string
	plans Plans
	wake  chan struct{}
	// ownOnly: see DrainDeps.OwnOnly.
	ownOnly bool
	// known caches each running batch's fixed fields (command, comment,
	// approvers); only the loop touches it.
	known map[string]store.Batch
}

// NewDrainer returns the drainer of s's replica.
func NewDrainer(s *Service, d DrainDeps) *Drainer {
	if d.Owner == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		d.Owner = "replica-" + hex.EncodeToString(b[:])
	}
	dr := &Drainer{s: s, b: d.Batches, gate: d.Gate, owner: d.Owner, plans: d.Plans, wake: make(chan struct{}, 1), known: map[string]store.Batch{}, ownOnly: d.OwnOnly}
	if d.Plans != nil {
		s.drainer = dr // bulk requests start batches on this drainer
	}
	return dr
}

// StartBatch stores b with one entry per machine (entries given as
// store.EntrySkipped are recorded with their reason and never sent) and
// wakes this replica's loop; every replica's loop drains it.
func (d *Drainer) StartBatch(ctx context.Context, b store.Batch, entries []store.BatchEntry) (store.Batch, error) {
	out, err := d.b.CreateBatch(ctx, b, entries)
	if err != nil {
		return store.Batch{}, fmt.Errorf("start batch: %w", err)
	}
	if d.ownOnly {
		d.s.goBackground(func(bg context.Context) { d.drainAlone(bg, out) })
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
	d.s.logger(ctx).Info().Str("batch", out.ID).Str("request_id", out.RequestID).Int("machines", out.Counts.Total).Msg("batch started")
	return out, nil
}

// StopBatch keeps the unsent rest of batch id from being sent; calls
// already sent are not affected. The batch as it is now is returned.
func (d *Drainer) StopBatch(ctx context.Context, id, by string) (store.Batch, error) {
	b, stopped, err := d.b.Stop(ctx, id, by)
	if err != nil {
		return store.Batch{}, fmt.Errorf("stop batch %s: %w", id, err)
	}
	if stopped {
		d.s.audit(ctx, store.Event{RequestID: b.RequestID, Type: store.EventCancelled, Actor: by,
			Reason: fmt.Sprintf("batch %s stopped: %d of %d not sent", id, b.Counts.Queued, b.Counts.Total)})
	}
	return b, nil
}

// Progress is batch id with its counts (O(1) in the store).
func (d *Drainer) Progress(ctx context.Context, id string) (store.Batch, error) {
	return d.b.GetBatch(ctx, id)
}

// Entries are batch id's machines and their outcomes, in order (for the
// final summary).
func (d *Drainer) Entries(ctx context.Context, id string) ([]store.BatchEntry, error) {
	return d.b.Entries(ctx, id)
}

// RecordResults records MDE's statuses of batch id's sent entries and
// returns those that became final, exactly once across replicas.
func (d *Drainer) RecordResults(ctx context.Context, id string, rs []store.ActionResult) ([]store.BatchEntry, error) {
	return d.b.RecordResults(ctx, id, rs)
}

// ClaimReply is true for exactly one caller per batch and reply name.
func (d *Drainer) ClaimReply(ctx context.Context, id, name string) (bool, error) {
	return d.b.ClaimReply(ctx, id, name)
}

// Start (once per Drainer) runs the drain loop as the Service's background work until stop
// ends or the Service stops (Service.Wait waits for it). Either ends its
// waits at once; a claim it holds is handed on by its lease. An MDE call in
// flight finishes and is recorded: only Service.Abort cuts it, and whoever
// reclaims the entry reconciles.
func (d *Drainer) Start(stop context.Context) {
	d.s.goBackground(func(bg context.Context) { d.run(stop, bg) })
}

// run loops over passes; stop bounds the waits, work (the Service's
// background context) the store writes and MDE calls.
func (d *Drainer) run(stop, work context.Context) {
	work = d.s.log.With().Str("drain", d.owner).Logger().WithContext(work)
	stop, cancel := d.s.untilStop(stop)
	defer cancel()
	for stop.Err() == nil && work.Err() == nil {
		if d.pass(stop, work) {
			continue
		}
		t := time.NewTimer(d.s.cfg.SchedulerEvery)
		select {
		case <-d.wake:
		case <-t.C:
		case <-stop.Done():
		case <-work.Done():
		}
		t.Stop()
	}
}

// drainAlone drains batch b by itself until it has nothing left to send
// (or the Service stops): DrainDeps.OwnOnly.
func (d *Drainer) drainAlone(work context.Context, b store.Batch) {
	stop, cancel := d.s.untilStop(work)
	defer cancel()
	for stop.Err() == nil {
		if d.drainOne(stop, work, b) {
			continue
		}
		cur, err := d.b.GetBatch(work, b.ID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && cur.Finished()) {
			return
		}
		d.s.waitUntil(stop, d.s.now().Add(d.s.cfg.SchedulerEvery)) // a held entry's reconciling, or the store down
	}
}

// pass drains the running batches, oldest first, until none has an entry
// to claim now; it reports whether it handled any.
func (d *Drainer) pass(stop, ctx context.Context) bool {
	ids, err := d.b.Running(ctx)
	if err != nil {
		d.s.logger(ctx).Warn().Err(err).Msg("could not list running batches; retrying")
		return false
	}
	worked := false
	for _, id := range ids {
		b, ok := d.batch(ctx, id)
		if !ok {
			continue
		}
		for stop.Err() == nil && d.drainOne(stop, ctx, b) {
			worked = true
		}
	}
	return worked
}

// batch is id's fixed fields, read once per process.
func (d *Drainer) batch(ctx context.Context, id string) (store.Batch, bool) {
	if b, ok := d.known[id]; ok {
		return b, true
	}
	b, err := d.b.GetBatch(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		d.forget(ctx, id)
		return store.Batch{}, false
	}
	if err != nil {
		d.s.logger(ctx).Warn().Err(err).Str("batch", id).Msg("could not read batch")
		return store.Batch{}, false
	}
	d.known[id] = b
	return b, true
}

func (d *Drainer) forget(ctx context.Context, id string) {
	delete(d.known, id)
	if err := d.b.Forget(ctx, id); err != nil {
		d.s.logger(ctx).Warn().Err(err).Str("batch", id).Msg("could not drop a finished batch from the running list")
	}
}

// drainOne takes a slot, claims an entry and sends it; false when b has
// nothing to claim now, or the drain must pause (stopping, store down).
func (d *Drainer) drainOne(stop, ctx context.Context, b store.Batch) bool {
	t, ok := d.slot(stop, ctx, budgetFor(b.Command))
	if !ok {
		return false
	}
	e, err := d.b.Claim(ctx, b.ID, d.owner, d.s.leases.callLease())
	switch {
	case errors.Is(err, store.ErrBatchEmpty):
		t.Release()
		return false
	case errors.Is(err, store.ErrBatchClosed):
		t.Release()
		d.forget(ctx, b.ID)
		return false
	case err != nil:
		t.Release()
		d.s.logger(ctx).Warn().Err(err).Str("batch", b.ID).Msg("could not claim a batch entry; retrying")
		return false
	}
	if e.Reclaimed {
		t.Release()
		return d.reclaim(stop, ctx, b, e)
	}
	d.send(stop, ctx, b, e, t, false)
	return true
}

// budgetFor is the rate-limit budget of command.
func budgetFor(c store.Command) string {
	if c == store.Unisolate {
		return defender.BudgetUnisolate
	}
	return defender.BudgetIsolate
}
