package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Outbreak mode's following: a batch's sent actions are followed to their
// end together. One ActionsSince call reads every action of the batch's
// type that MDE created since the batch started (pages of 10,000), and the
// batch's entries are matched by action id: a read costs one call of the
// machineactions budget however many actions it covers, never one per
// action. Reads are spent like money:
//
//   - while the batch sends, one read per BulkReadEvery calls sent (1 %
//     at the default 100), and at least one every PollMaxInterval;
//   - after the last send, a read after PollInterval, then twice as long
//     after each read, up to PollMaxInterval, until every action is final
//     or FollowFor has passed since the batch started.
//
// Results are recorded in the batch store (RecordResults), which returns
// each entry that became final exactly once across replicas: that entry's
// outcome is audited once.

// batchReads is one watcher's schedule of status reads of one batch. It is
// kept in memory: a replica that takes a batch over reads once at once.
type batchReads struct {
	last     time.Time // the last read; zero before the first
	sentAt   int       // Counts.Sent at the last read
	tail     int       // reads since the batch finished sending
	finished time.Time // when this watcher first saw the batch finished
	// summarised: the summary is out (bulk_summary.go); summaryEnded: it
	// was posted when nothing was left with MDE, so no second reply.
	summarised, summaryEnded bool
}

// readDue reports whether b's sent actions are due for a read at now.
func (s *Service) readDue(f *batchReads, b store.Batch, now time.Time) bool {
	c := b.Counts
	switch {
	case c.Sent == 0 || c.Settled():
		return false
	case !b.Finished():
		since := f.last
		if since.IsZero() {
			since = b.CreatedAt
		}
		return c.Sent-f.sentAt >= s.cfg.BulkReadEvery || now.Sub(since) >= s.cfg.PollMaxInterval
	case f.last.IsZero():
		return true // a watcher new to a finished batch (it took it over) reads at once
	}
	from := f.last
	if f.finished.After(from) {
		from = f.finished
	}
	return !now.Before(from.Add(s.tailEvery(f.tail)))
}

// tailEvery is the wait before the (n+1)th read after the batch finished
// sending: PollInterval doubled n times, at most PollMaxInterval.
func (s *Service) tailEvery(n int) time.Duration {
	every := s.cfg.PollInterval
	for ; n > 0 && every < s.cfg.PollMaxInterval; n-- {
		every *= 2
	}
	return min(every, s.cfg.PollMaxInterval)
}

// followBatch reads b's sent actions when due and records what changed;
// it returns b as it is now. A failed read is tried again at the next due
// time (the schedule moves on, so a failing MDE is not hammered).
func (s *Service) followBatch(ctx context.Context, b store.Batch, f *batchReads) store.Batch {
	now := s.now()
	if b.Finished() && f.finished.IsZero() {
		f.finished = now
	}
	if !s.readDue(f, b, now) {
		return b
	}
	if b.Finished() && !f.last.IsZero() {
		f.tail++
	}
	f.last, f.sentAt = now, b.Counts.Sent
	if err := s.readBatch(ctx, b); err != nil {
		s.logger(ctx).Warn().Err(err).Str("batch", b.ID).Msg("could not read the batch's MDE actions; reading again later")
		return b
	}
	if nb, err := s.drainer.Progress(ctx, b.ID); err == nil {
		return nb
	}
	return b
}

// readBatch reads the actions of b's sent entries with one ActionsSince
// look-up and records their statuses.
func (s *Service) readBatch(ctx context.Context, b store.Batch) error {
	entries, err := s.drainer.Entries(ctx, b.ID)
	if err != nil {
		return fmt.Errorf("read batch %s entries: %w", b.ID, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	acts, err := s.d.Defender.ActionsSince(callCtx, actionType(store.Request{Command: b.Command}), b.CreatedAt.Add(-s.cfg.BulkReadSkew))
	cancel()
	if err != nil {
		return fmt.Errorf("read batch %s actions: %w", b.ID, err)
	}
	byID := make(map[string]defender.MachineAction, len(acts))
	for _, a := range acts {
		byID[strings.ToLower(a.ID)] = a
	}
	var rs []store.ActionResult
	for _, e := range entries {
		if e.State != store.EntrySent || store.FinalStatus(e.Status) {
			continue
		}
		if a, ok := byID[strings.ToLower(e.ActionID)]; ok && a.Status != e.Status {
			rs = append(rs, store.ActionResult{N: e.N, ActionID: e.ActionID, Status: a.Status, Detail: failureDetail(a)})
		}
	}
	if len(rs) == 0 {
		return nil
	}
	final, err := s.drainer.RecordResults(ctx, b.ID, rs)
	if err != nil {
		return fmt.Errorf("record batch %s results: %w", b.ID, err)
	}
	for _, e := range final {
		s.audit(ctx, store.Event{RequestID: b.RequestID, Type: store.EventStatus, Actor: systemActor, MachineID: e.MachineID,
			Operation: string(b.Command), ActionID: e.ActionID, Reason: strings.TrimSuffix(fmt.Sprintf("batch %s: %s: %s", e.Marker(), e.Status, e.Reason), ": ")})
	}
	return nil
}

// failureDetail is why a ended unsuccessfully, in plain words; empty
// unless it did.
func failureDetail(a defender.MachineAction) string {
	switch a.Status {
	case defender.StatusFailed:
		if d := a.ErrorDetails(); d != "" {
			return d
		}
		return "MDE gave no reason"
	case defender.StatusTimeOut:
		return "MDE could not complete it in time"
	case defender.StatusCancelled:
		if a.CancellationRequestor != "" {
			return "cancelled by " + a.CancellationRequestor
		}
		return "cancelled in MDE"
	}
	return ""
}
