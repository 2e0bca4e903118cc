package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// Outbreak mode's progress: while a batch runs, its card is updated at
// most every progressEvery (5 s) with the counts and an estimate from the
// limiter's rate; when it is finished, one grouped summary goes to the
// thread and the request ends. The thread gets no other reply from the
// batch, so it never gets more than one reply per progressEvery.

// BulkCard is the outbreak part of a bulk request's card.
type BulkCard struct {
	Machines int                // machines to send (skipped ones excluded)
	Preview  []defender.Machine // the first machines, when at hand
	Batch    *store.Batch       // nil until the batch started
	// NextAt and DoneBy estimate the next call and the last one from the
	// rate limit; zero when unknown or finished.
	NextAt, DoneBy time.Time
}

// Progress is the batch's progress as the card shows it: "5/12 sent · 3
// isolated · 1 failed · 0 skipped · next at 10:58 UTC · done by about
// 11:04 UTC"; failed counts calls MDE refused and actions MDE ended
// unsuccessfully. user renders who stopped a stopped batch. Empty before
// the batch starts.
func (bc BulkCard) Progress(c store.Command, user func(id string) string) string {
	b := bc.Batch
	if b == nil {
		return ""
	}
	n := b.Counts
	s := fmt.Sprintf("%d/%d sent · %d %s · %d failed · %d skipped", n.Sent, n.Total-n.Skipped, n.Succeeded, doneWord(c), n.Failed+n.Unsuccessful, n.Skipped)
	if open := n.Sent - n.Succeeded - n.Unsuccessful; open > 0 && b.Finished() {
		s += fmt.Sprintf(" · %d with MDE", open)
	}
	switch {
	case b.State == store.BatchStopped:
		s = "stopped by " + user(b.StoppedBy) + " · " + s + fmt.Sprintf(" · %d not sent", n.Queued)
	case b.Finished():
		s = "finished · " + s
	case !bc.DoneBy.IsZero():
		s += fmt.Sprintf(" · next at %s · done by about %s", hhmm(bc.NextAt), hhmm(bc.DoneBy))
	}
	return s
}

func (s *Service) progressEvery() time.Duration { return s.cfg.BulkProgressEvery }

// bulkCard is bulk request r's card, with batch b's progress when known.
func (s *Service) bulkCard(r store.Request, b *store.Batch) Card {
	bc := &BulkCard{Batch: b}
	fmt.Sscanf(r.HostName, "%d", &bc.Machines)
	c := Card{Request: r, Approvers: s.cfg.Approvers, Protected: r.Protected, Bulk: bc}
	switch {
	case r.State == store.Pending:
		c.Buttons = []Button{ButtonApprove, ButtonDeny}
	case r.State == store.Executing && (b == nil || !b.Finished()) && r.MachineActionID != "":
		c.Buttons = []Button{ButtonStop}
	}
	if b != nil && b.State == store.BatchRunning && s.cfg.RatePerMinute > 0 {
		step := time.Minute / time.Duration(s.cfg.RatePerMinute)
		left := b.Counts.Queued + b.Counts.Claimed
		if left > 0 {
			bc.NextAt = s.now().Add(step).Truncate(time.Minute).Add(time.Minute)
			bc.DoneBy = s.now().Add(time.Duration(left) * step).Truncate(time.Minute).Add(time.Minute)
		}
	}
	return c
}

func (s *Service) updateBulkCard(ctx context.Context, r store.Request, b *store.Batch) {
	if r.MessageTS == "" || r.Channel == "" {
		return
	}
	if err := s.d.Messenger.UpdateCard(ctx, r.Channel, r.MessageTS, s.bulkCard(r, b)); err != nil {
		s.logger(ctx).Error().Err(err).Msg("could not update the bulk card")
	}
}

// watchBatch updates r's card every progressEvery while its batch sends
// and MDE works on the sent actions (bulk_follow.go reads them), renewing
// r's hold (CheckAt); it posts the summary and ends r at the milestones of
// bulk_summary.go.
func (s *Service) watchBatch(ctx context.Context, r store.Request) {
	t := time.NewTicker(s.progressEvery())
	defer t.Stop()
	var f batchReads
	var shown store.Batch
	for {
		b, err := s.drainer.Progress(ctx, r.MachineActionID)
		if err == nil {
			b = s.followBatch(ctx, b, &f)
			if s.batchMilestones(ctx, r, b, &f) {
				return
			}
			if b.Counts != shown.Counts || b.State != shown.State {
				shown = b
				s.updateBulkCard(ctx, r, &b)
			}
			d, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing,
				CheckAt: s.now().Add(s.bulkLease()), IfVersion: r.Version})
			if err != nil {
				s.logger(ctx).Info().Err(err).Msg("lost the hold of the bulk request; another replica follows it")
				return
			}
			r = d
		} else if errors.Is(err, store.ErrNotFound) {
			s.batchLost(ctx, r)
			return
		} else {
			s.logger(ctx).Warn().Err(err).Msg("could not read the batch's progress; retrying")
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		case <-s.stopped.Done():
			return
		}
	}
}

// batchLost ends r whose batch record is gone (Redis lost it, or it
// outlived AUDIT_RETENTION): nothing more is sent or followed for it, and
// the thread says where to look.
func (s *Service) batchLost(ctx context.Context, r store.Request) {
	s.logger(ctx).Error().Str("batch", r.MachineActionID).Msg("the batch record is gone; ending the bulk request")
	s.reply(ctx, r, msg(txtf("Batch %s: its record is gone from the bot's store, so nothing more is sent or followed for it. Check the MDE portal (Action center) for its machines.", r.MachineActionID)))
	s.finishBulk(ctx, r, store.Failed, "batch "+r.MachineActionID+" record lost", nil)
}

// maxLineChars bounds one line of a list (a group of host names is
// wrapped): well under a Slack section's 3,000 characters once escaped.
const maxLineChars = 2000

// bulkListMessage lists every machine of a plan, the skipped ones with
// their reason, in one reply.
func bulkListMessage(entries []store.BatchEntry) Message {
	m := msg(txtf("The %d machines named:", len(entries)))
	for i, e := range entries {
		l := fmt.Sprintf("%d. %s", i+1, e.HostName)
		if e.State == store.EntrySkipped {
			l += " — left out: " + e.Reason
		}
		m.List = append(m.List, l)
	}
	return m
}

// skippedSpans lists the skipped entries of a plan for a refusal.
func skippedSpans(entries []store.BatchEntry) []Span {
	var out []Span
	for _, e := range entries {
		out = append(out, txt(" "), code(e.HostName), txt(" ("+e.Reason+");"))
	}
	return out
}

// wrapJoined joins items with ", " after head, in lines of at most
// maxLineChars (an item longer than that is cut).
func wrapJoined(head string, items []string) []string {
	lines := []string{head}
	for i, it := range items {
		if len(it) > maxLineChars {
			it = it[:maxLineChars]
		}
		cur := &lines[len(lines)-1]
		sep := ", "
		if i == 0 {
			sep = " "
		}
		if len(*cur)+len(sep)+len(it) > maxLineChars {
			lines = append(lines, it)
			continue
		}
		*cur += sep + it
	}
	return lines
}
