package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Following sent entries to their end (issue 11): a watcher in commands
// reads MDE's statuses of the sent actions and records them here, so the
// card and the summary can count outcomes, exactly once across replicas.

var (
	//go:embed batch_results.lua
	batchResultsSrc string
	//go:embed batch_reply.lua
	batchReplySrc string

	batchResultsScript = redis.NewScript(batchResultsSrc)
	batchReplyScript   = redis.NewScript(batchReplySrc)
)

// errBatchGone is how RecordResults and ClaimReply report a batch that is
// gone: ErrBatchClosed, and ErrNotFound as GetBatch reports it.
func errBatchGone(id string) error {
	return fmt.Errorf("batch %s: %w: %w", id, ErrBatchClosed, ErrNotFound)
}

// resultArgs are rs as the script's ARGV quadruples, without results that
// can apply to no entry; the detail is kept on one line, and only for an
// unsuccessful final status.
func resultArgs(rs []ActionResult) []any {
	args := make([]any, 0, 4*len(rs))
	for _, r := range rs {
		if r.N < 1 || r.ActionID == "" || r.Status == "" {
			continue
		}
		args = append(args, r.N, r.ActionID, r.Status, resultDetail(r))
	}
	return args
}

func resultDetail(r ActionResult) string {
	if !FinalStatus(r.Status) || r.Status == statusSucceeded {
		return ""
	}
	return oneLine(r.Detail)
}

// RecordResults records MDE's statuses of batch id's sent entries. A
// result applies only to a sent entry with that ActionID whose status is
// not final yet; a final status is never changed (so concurrent or
// repeated writers agree). It returns the entries that became final with
// this call, in the order of rs, exactly once across callers (the caller
// audits them). Unknown positions and mismatched action ids are ignored.
// One script call whatever len(rs); it works on a done batch too (its
// keys are kept for Retention) and changes neither its state nor TTLs.
// ErrBatchClosed (and ErrNotFound) when the batch is gone.
func (s *Batches) RecordResults(ctx context.Context, id string, rs []ActionResult) ([]BatchEntry, error) {
	k := s.keys(id)
	res, err := batchResultsScript.Run(ctx, s.rdb, []string{k.meta, k.entries}, resultArgs(rs)...).Slice()
	if err != nil {
		return nil, unavailable("record results of "+id, err)
	}
	if res[0] == "closed" {
		return nil, errBatchGone(id)
	}
	out := make([]BatchEntry, 0, (len(res)-1)/2)
	for i := 1; i+1 < len(res); i += 2 {
		n, _ := res[i].(string)
		raw, _ := res[i+1].(string)
		e, err := decodeEntry(id, n, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ClaimReply reports true to exactly one caller per batch and name (e.g.
// "summary", "settled"): which replica posts a batch's one-off thread
// reply. One round trip; the claim lives in the batch's meta hash (field
// r:<name>) and goes with it. ErrBatchClosed (and ErrNotFound) when the
// batch is gone.
func (s *Batches) ClaimReply(ctx context.Context, id, name string) (bool, error) {
	if name == "" {
		return false, errors.New("batch: ClaimReply needs a name")
	}
	n, err := batchReplyScript.Run(ctx, s.rdb, []string{s.keys(id).meta}, "r:"+name, s.cfg.Now().UnixMicro()).Int()
	if err != nil {
		return false, unavailable("claim reply "+name+" of "+id, err)
	}
	if n < 0 {
		return false, errBatchGone(id)
	}
	return n == 1, nil
}
