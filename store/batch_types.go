package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Outbreak mode's durable batches (issue 11): one batch record per approved
// bulk command and one queue entry per machine, drained by every replica at
// the rate limiter's pace. Batches (Redis) and MemoryBatches (one process)
// implement the same contract (batch_contract_test.go).

// BatchState is the state of a whole batch.
type BatchState string

const (
	BatchRunning BatchState = "running" // entries are being claimed and sent
	BatchStopped BatchState = "stopped" // Stop: nothing more is claimed; claims of dead replicas are still reconciled
	BatchDone    BatchState = "done"    // every entry is sent, failed or skipped
)

// EntryState is the state of one machine of a batch.
//
//	queued → claimed(owner, lease) → sent(action id) | failed(reason) | skipped(reason)
//	claimed → queued (Requeue: nothing was sent)
//
// A claimed entry whose lease ran out is claimed again by the next Claim,
// flagged Reclaimed: the previous owner may have sent its call, so the new
// owner reconciles with MDE (the entry's marker) before any call.
type EntryState string

const (
	EntryQueued  EntryState = "queued"
	EntryClaimed EntryState = "claimed"
	EntrySent    EntryState = "sent"
	EntryFailed  EntryState = "failed"
	EntrySkipped EntryState = "skipped"
)

// Final reports whether no change leaves s.
func (s EntryState) Final() bool { return s == EntrySent || s == EntryFailed || s == EntrySkipped }

// Batch is one bulk command's durable record. Counts are kept in O(1).
type Batch struct {
	ID            string  // "b-<n>", assigned by CreateBatch
	RequestID     string  // the approval request the batch executes, if any
	Command       Command //
	IsolationType string  // MDE wire value; empty for unisolate
	Comment       string  // the analyst's comment, raw
	Requester     string  // Slack user id
	Approvers     []string
	State         BatchState
	CreatedAt     time.Time // also the approval time reconciliation compares actions with
	StoppedBy     string
	StoppedAt     time.Time
	Counts        BatchCounts
}

// BatchCounts is a batch's progress. Succeeded and Unsuccessful count the
// sent entries whose action MDE reports final: Succeeded, or Failed,
// TimeOut or Cancelled (RecordResults).
type BatchCounts struct {
	Total, Queued, Claimed, Sent, Failed, Skipped int
	Succeeded, Unsuccessful                       int
}

// Settled reports whether every sent entry's action is final at MDE (true
// when nothing was sent). It says nothing of entries not sent yet: combine
// it with Batch.Finished.
func (c BatchCounts) Settled() bool { return c.Succeeded+c.Unsuccessful >= c.Sent }

// Finished reports whether the batch has nothing left to send or reconcile.
func (b Batch) Finished() bool {
	return b.State == BatchDone || (b.State == BatchStopped && b.Counts.Claimed == 0)
}

// BatchEntry is one machine of a batch.
type BatchEntry struct {
	Batch     string // batch id
	N         int    // position, from 1
	MachineID string
	HostName  string
	State     EntryState
	// Owner and LeaseUntil: the replica that claimed the entry and until
	// when; Attempt counts claims, so a record by an earlier claim of the
	// same replica is refused too.
	Owner      string
	LeaseUntil time.Time
	Attempt    int
	// Reclaimed: this claim took over a claim whose lease ran out.
	Reclaimed bool
	ActionID  string // sent: the MDE action
	// Reason: failed or skipped, why, in plain words; sent, when MDE
	// reports the action ended unsuccessfully, MDE's failure detail.
	Reason string
	// Status is MDE's last known status of a sent entry's action (Pending,
	// InProgress, Succeeded, Failed, TimeOut, Cancelled); empty until read.
	Status string
}

// MDE's final MachineAction statuses, spelled as MDE spells them.
const (
	statusSucceeded = "Succeeded"
	statusFailed    = "Failed"
	statusTimeOut   = "TimeOut"
	statusCancelled = "Cancelled"
)

// FinalStatus reports whether MDE's status s is final (Succeeded, Failed,
// TimeOut, Cancelled; case as MDE spells them).
func FinalStatus(s string) bool {
	switch s {
	case statusSucceeded, statusFailed, statusTimeOut, statusCancelled:
		return true
	}
	return false
}

// ActionResult is MDE's word on a sent entry's action (RecordResults).
type ActionResult struct {
	N        int    // the entry's position
	ActionID string // must be the entry's action; otherwise the result is ignored
	Status   string // MDE's status
	Detail   string // an unsuccessful final status: why, in plain words (kept on one line)
}

// Marker is the id the entry's MDE comment is marked with: "b-3/17".
func (e BatchEntry) Marker() string { return fmt.Sprintf("%s/%d", e.Batch, e.N) }

// Errors of the batch store, for errors.Is.
var (
	// ErrBatchEmpty: nothing is claimable now (every entry is claimed by a
	// live owner or final), but the batch is not finished.
	ErrBatchEmpty = errors.New("batch: no entry to claim now")
	// ErrBatchClosed: the batch is finished, stopped with nothing to
	// reconcile, or gone (past retention).
	ErrBatchClosed = errors.New("batch: closed")
	// ErrLostClaim: the entry is no longer this owner's claim (another
	// replica reclaimed it, or it is final); the write did nothing.
	ErrLostClaim = errors.New("batch: entry is no longer ours")
)

// BatchesConfig configures Batches and MemoryBatches. Every field but Now
// is required; internal/app passes internal/config's values.
type BatchesConfig struct {
	Prefix string // as ApprovalsConfig.Prefix
	// Retention (AUDIT_RETENTION) is how long a batch's keys live after its
	// creation and again after it finishes.
	Retention time.Duration
	// Now is the clock of leases and record times; nil means time.Now.
	Now func() time.Time
}

func (c BatchesConfig) checked() BatchesConfig {
	if c.Prefix == "" || c.Retention <= 0 {
		panic("store: BatchesConfig.Prefix and Retention are required; internal/app passes internal/config's values")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// prepareBatch checks a new batch and its entries and normalises them.
func prepareBatch(b Batch, entries []BatchEntry, now time.Time) (Batch, []BatchEntry, error) {
	if b.Command != Isolate && b.Command != Unisolate {
		return Batch{}, nil, fmt.Errorf("batch: command %q is not isolate or unisolate", b.Command)
	}
	if len(entries) == 0 {
		return Batch{}, nil, errors.New("batch: no entries")
	}
	out := make([]BatchEntry, len(entries))
	b.Counts = BatchCounts{Total: len(entries)}
	for i, e := range entries {
		// A skipped entry may name no machine: a name that matched none,
		// or several, is listed in the summary and never sent.
		if e.MachineID == "" && e.State != EntrySkipped {
			return Batch{}, nil, fmt.Errorf("batch: entry %d has no machine id", i+1)
		}
		st := EntryQueued
		if e.State == EntrySkipped {
			st = EntrySkipped
			b.Counts.Skipped++
		} else {
			b.Counts.Queued++
		}
		out[i] = BatchEntry{N: i + 1, MachineID: strings.ToLower(e.MachineID), HostName: e.HostName, State: st, Reason: oneLine(e.Reason)}
	}
	b.State, b.CreatedAt, b.StoppedBy, b.StoppedAt = BatchRunning, now.UTC().Truncate(time.Microsecond), "", time.Time{}
	return b, out, nil
}

// oneLine keeps a reason on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
