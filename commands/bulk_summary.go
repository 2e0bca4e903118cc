package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// A batch's thread hears from it twice at most, whatever its size:
//
//  1. the summary, once the batch has sent everything it will send and
//     MDE has ended every sent action, or PollFastFor after the last send
//     (offline machines keep an action pending for days): the machines
//     grouped by outcome (isolated, failed with reasons, still with MDE,
//     not sent, skipped, stopped);
//  2. when actions were still with MDE at the summary: one reply when the
//     last of them ended, or when following stopped (FollowFor after the
//     batch started), naming the ones that did not succeed.
//
// Then the request ends. Each reply is claimed in the batch store
// (ClaimReply) so that exactly one replica posts it.

const (
	replySummary = "summary"
	replySettled = "settled"
)

// batchMilestones posts b's replies when due and ends r once every sent
// action is final or following stopped; it reports whether r ended.
func (s *Service) batchMilestones(ctx context.Context, r store.Request, b store.Batch, f *batchReads) bool {
	if !b.Finished() {
		return false
	}
	now := s.now()
	settled := b.Counts.Settled()
	over := !now.Before(b.CreatedAt.Add(s.cfg.FollowFor))
	quiet := !now.Before(f.finished.Add(s.cfg.PollFastFor))
	if !f.summarised && (settled || over || quiet) {
		posted, ok := s.postOnce(ctx, r, b, replySummary, func(es []store.BatchEntry) Message { return summaryMessage(b, es) })
		if !ok {
			return false
		}
		f.summarised, f.summaryEnded = true, posted && (settled || over)
	}
	if !settled && !over {
		return false
	}
	if !f.summaryEnded {
		if _, ok := s.postOnce(ctx, r, b, replySettled, func(es []store.BatchEntry) Message { return settledMessage(b, es, over) }); !ok {
			return false
		}
	}
	s.endBulk(ctx, r, b)
	return true
}

// postOnce posts the reply name of batch b unless another replica (or an
// earlier watcher) has; posted reports whether this call posted it, ok
// whether the store answered.
func (s *Service) postOnce(ctx context.Context, r store.Request, b store.Batch, name string, build func([]store.BatchEntry) Message) (posted, ok bool) {
	entries, err := s.drainer.Entries(ctx, b.ID)
	if err == nil {
		posted, err = s.drainer.ClaimReply(ctx, b.ID, name)
	}
	if err != nil {
		s.logger(ctx).Warn().Err(err).Str("batch", b.ID).Str("reply", name).Msg("could not prepare the batch's reply; trying again")
		return false, false
	}
	if posted {
		s.reply(ctx, r, build(entries))
	}
	return posted, true
}

// endBulk ends r (executing): done, or failed when nothing was sent.
func (s *Service) endBulk(ctx context.Context, r store.Request, b store.Batch) {
	c := b.Counts
	to, note := store.Done, fmt.Sprintf("batch %s: %d sent (%d %s, %d failed at MDE), %d not sent, %d skipped",
		b.ID, c.Sent, c.Succeeded, doneWord(b.Command), c.Unsuccessful, c.Failed, c.Skipped)
	if b.State == store.BatchStopped {
		note += ", stopped by " + b.StoppedBy
	}
	if c.Sent == 0 {
		to = store.Failed
	}
	s.finishBulk(ctx, r, to, note, &b)
}

// doneWord is what a succeeded action of command did to its machine.
func doneWord(c store.Command) string {
	if c == store.Unisolate {
		return "released"
	}
	return "isolated"
}

// entryGroup is where e stands, in the summary's words, and the group's
// rank in the summary (what people act on first comes first).
func entryGroup(b store.Batch, e store.BatchEntry) (rank int, label string) {
	switch e.State {
	case store.EntrySent:
		switch {
		case e.Status == defender.StatusSucceeded:
			return 0, doneWord(b.Command)
		case store.FinalStatus(e.Status):
			return 1, fmt.Sprintf("failed at MDE (%s): %s", e.Status, e.Reason)
		case e.Status == "":
			return 2, "sent, MDE's status not read yet"
		default:
			return 2, "still " + e.Status + " at MDE"
		}
	case store.EntryFailed:
		return 3, "not sent: " + e.Reason
	case store.EntrySkipped:
		return 4, "skipped: " + e.Reason
	}
	return 5, "not sent: the batch was stopped"
}

// groupLines lists entries by group, "label (n): host, host…", in rank
// order; keep filters the entries.
func groupLines(b store.Batch, entries []store.BatchEntry, keep func(rank int) bool) []string {
	type group struct {
		rank  int
		label string
		hosts []string
	}
	var groups []*group
	byLabel := map[string]*group{}
	for _, e := range entries {
		rank, label := entryGroup(b, e)
		if !keep(rank) {
			continue
		}
		g := byLabel[label]
		if g == nil {
			g = &group{rank: rank, label: label}
			byLabel[label] = g
			groups = append(groups, g)
		}
		g.hosts = append(g.hosts, e.HostName)
	}
	slices.SortStableFunc(groups, func(a, b *group) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return strings.Compare(a.label, b.label)
	})
	var lines []string
	for _, g := range groups {
		lines = append(lines, wrapJoined(fmt.Sprintf("%s (%d):", g.label, len(g.hosts)), g.hosts)...)
	}
	return lines
}

// countsLine is b's outcome in numbers: "280 isolated · 5 failed · 10
// skipped · 5 still with MDE · 100 not sent".
func countsLine(b store.Batch) string {
	c := b.Counts
	s := fmt.Sprintf("%d %s · %d failed", c.Succeeded, doneWord(b.Command), c.Unsuccessful+c.Failed)
	if c.Skipped > 0 {
		s += fmt.Sprintf(" · %d skipped", c.Skipped)
	}
	if open := c.Sent - c.Succeeded - c.Unsuccessful; open > 0 {
		s += fmt.Sprintf(" · %d still with MDE", open)
	}
	if n := c.Queued + c.Claimed; n > 0 {
		s += fmt.Sprintf(" · %d not sent", n)
	}
	return s
}

// summaryMessage is b's summary: the counts, then every machine grouped
// by outcome.
func summaryMessage(b store.Batch, entries []store.BatchEntry) Message {
	m := msg(txtf("Batch %s finished: %s", b.ID, countsLine(b)))
	if b.State == store.BatchStopped {
		m = msg(txtf("Batch %s stopped by ", b.ID), who(b.StoppedBy), txt(": "+countsLine(b)))
	}
	m.List = groupLines(b, entries, func(int) bool { return true })
	return m
}

// settledMessage tells how the actions still with MDE at the summary
// ended (over: following stopped first), naming every sent machine that
// was not a success.
func settledMessage(b store.Batch, entries []store.BatchEntry, over bool) Message {
	m := msg(txtf("Batch %s: every sent action has ended: %s", b.ID, countsLine(b)))
	if over && !b.Counts.Settled() {
		m = msg(txtf("Batch %s: stopped following its MDE actions: %s. Check ", b.ID, countsLine(b)), code(UsageStatus), txt(" or the MDE portal."))
	}
	m.List = groupLines(b, entries, func(rank int) bool { return rank == 1 || rank == 2 })
	return m
}
