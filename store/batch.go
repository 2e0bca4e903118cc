package store

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed batch_claim.lua
	batchClaimSrc string
	//go:embed batch_record.lua
	batchRecordSrc string
	//go:embed batch_stop.lua
	batchStopSrc string

	batchClaimScript  = redis.NewScript(batchClaimSrc)
	batchRecordScript = redis.NewScript(batchRecordSrc)
	batchStopScript   = redis.NewScript(batchStopSrc)
)

// batchKeys are one batch's keys, all under the hash tag {<p>:b:<id>}: one
// Cluster slot per batch, so batches spread over the shards.
type batchKeys struct{ meta, queue, claimed, entries string }

func (k batchKeys) all() []string { return []string{k.meta, k.queue, k.claimed, k.entries} }

// claimedSentinel keeps the claimed zset (and its TTL) alive when no entry
// is claimed; its score +inf never comes due.
const claimedSentinel = "-"

// Batches is the Redis-backed batch store shared by all replicas. Every
// change of an entry is one Lua script; every Redis failure is returned
// wrapping ErrUnavailable. Safe for concurrent use.
type Batches struct {
	rdb    redis.UniversalClient
	cfg    BatchesConfig
	prefix string
}

// NewBatches returns a Batches on rdb. It panics when cfg lacks a value.
func NewBatches(rdb redis.UniversalClient, cfg BatchesConfig) *Batches {
	cfg = cfg.checked()
	return &Batches{rdb: rdb, cfg: cfg, prefix: cfg.Prefix}
}

func (s *Batches) keys(id string) batchKeys {
	tag := "{" + s.prefix + ":b:" + id + "}"
	return batchKeys{tag + ":meta", tag + ":queue", tag + ":claimed", tag + ":entries"}
}

// index is the set of batches not yet finished, scored by creation; seq
// numbers the batches. Both live in the approvals' slot.
func (s *Batches) index() string { return "{" + s.prefix + "}:batches" }
func (s *Batches) seq() string   { return "{" + s.prefix + "}:bseq" }

// CreateBatch stores b (assigning ID "b-<n>", CreatedAt and State) with one
// entry per machine, in order; entries given as EntrySkipped are recorded
// as skipped with their reason, the others are queued.
func (s *Batches) CreateBatch(ctx context.Context, b Batch, entries []BatchEntry) (Batch, error) {
	b, entries, err := prepareBatch(b, entries, s.cfg.Now())
	if err != nil {
		return Batch{}, err
	}
	n, err := s.rdb.Incr(ctx, s.seq()).Result()
	if err != nil {
		return Batch{}, unavailable("number a batch", err)
	}
	b.ID = "b-" + strconv.FormatInt(n, 10)
	if b.Counts.Queued == 0 {
		b.State = BatchDone
	}
	k := s.keys(b.ID)
	fields := map[string]any{}
	var queued []any
	for i := range entries {
		entries[i].Batch = b.ID
		fields[strconv.Itoa(entries[i].N)] = encodeEntry(entries[i])
		if entries[i].State == EntryQueued {
			queued = append(queued, entries[i].N)
		}
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.meta, batchFields(b))
		p.HSet(ctx, k.entries, fields)
		if len(queued) > 0 {
			p.RPush(ctx, k.queue, queued...)
		}
		p.ZAdd(ctx, k.claimed, redis.Z{Score: math.Inf(1), Member: claimedSentinel})
		for _, key := range k.all() {
			p.PExpire(ctx, key, s.cfg.Retention)
		}
		return nil
	})
	if err != nil {
		return Batch{}, unavailable("create batch "+b.ID, err)
	}
	if b.State == BatchRunning {
		if err := s.rdb.ZAdd(ctx, s.index(), redis.Z{Score: float64(b.CreatedAt.UnixMicro()), Member: b.ID}).Err(); err != nil {
			return Batch{}, unavailable("index batch "+b.ID, err)
		}
	}
	return b, nil
}

// Running returns the ids of batches not yet seen finished, oldest first.
func (s *Batches) Running(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.index(), 0, -1).Result()
	if err != nil {
		return nil, unavailable("list batches", err)
	}
	return ids, nil
}

// Forget drops id from Running (a finished or vanished batch).
func (s *Batches) Forget(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, s.index(), id).Err(); err != nil {
		return unavailable("forget batch "+id, err)
	}
	return nil
}

// GetBatch returns the batch with its counts: one round trip of three O(1)
// reads (the hash, LLEN of the queue, ZCARD of the claims). ErrNotFound
// for an unknown or expired id.
func (s *Batches) GetBatch(ctx context.Context, id string) (Batch, error) {
	k := s.keys(id)
	var h *redis.MapStringStringCmd
	var q, c *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, k.meta)
		q = p.LLen(ctx, k.queue)
		c = p.ZCard(ctx, k.claimed)
		return nil
	})
	if err != nil {
		return Batch{}, unavailable("read batch "+id, err)
	}
	if len(h.Val()) == 0 {
		return Batch{}, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	b, err := parseBatch(id, h.Val())
	if err != nil {
		return Batch{}, err
	}
	b.Counts.Queued = int(q.Val())
	b.Counts.Claimed = max(int(c.Val())-1, 0)
	return b, nil
}

// Entries returns every entry of the batch in order (for the summary).
func (s *Batches) Entries(ctx context.Context, id string) ([]BatchEntry, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys(id).entries).Result()
	if err != nil {
		return nil, unavailable("read entries of "+id, err)
	}
	return parseEntries(id, m)
}

// Claim gives owner the next entry until lease: first one whose claim ran
// out (Reclaimed: reconcile before any call), else the head of the queue
// while the batch runs. Exactly one caller gets each. ErrBatchEmpty when
// nothing is claimable now, ErrBatchClosed when the batch is finished,
// stopped with nothing to reconcile, or gone.
func (s *Batches) Claim(ctx context.Context, id, owner string, lease time.Duration) (BatchEntry, error) {
	now := s.cfg.Now()
	until := now.Add(lease)
	res, err := batchClaimScript.Run(ctx, s.rdb, s.keys(id).all(), now.UnixMicro(), owner, until.UnixMicro()).Slice()
	if err != nil {
		return BatchEntry{}, unavailable("claim from "+id, err)
	}
	switch res[0] {
	case "empty":
		return BatchEntry{}, ErrBatchEmpty
	case "closed":
		return BatchEntry{}, fmt.Errorf("%s: %w", id, ErrBatchClosed)
	}
	e, err := decodeEntry(id, res[1].(string), res[2].(string))
	if err != nil {
		return BatchEntry{}, err
	}
	e.Reclaimed = res[3].(int64) == 1
	return e, nil
}

// Extend keeps e, which owner holds, claimed until until (a call whose
// outcome is unknown is reconciled after it).
func (s *Batches) Extend(ctx context.Context, e BatchEntry, until time.Time) (BatchEntry, error) {
	out, _, err := s.record(ctx, e, "extend", "", "", until)
	return out, err
}

// Requeue puts e, which owner holds and nothing was sent for, back at the
// head of the queue.
func (s *Batches) Requeue(ctx context.Context, e BatchEntry) error {
	_, _, err := s.record(ctx, e, "requeue", "", "", time.Time{})
	return err
}

// Finish records the outcome of e, which owner holds: EntrySent (with the
// action id), EntryFailed or EntrySkipped (with a reason). finished
// reports whether this was the batch's last open entry. ErrLostClaim when
// the claim is no longer e's.
func (s *Batches) Finish(ctx context.Context, e BatchEntry, to EntryState, actionID, reason string) (out BatchEntry, finished bool, err error) {
	if !to.Final() {
		return BatchEntry{}, false, fmt.Errorf("batch: %s is not a final entry state", to)
	}
	out, finished, err = s.record(ctx, e, string(to), actionID, oneLine(reason), time.Time{})
	if err == nil && finished {
		err = s.Forget(ctx, e.Batch)
	}
	return out, finished, err
}

func (s *Batches) record(ctx context.Context, e BatchEntry, op, actionID, reason string, until time.Time) (BatchEntry, bool, error) {
	var lease int64
	if !until.IsZero() {
		lease = until.UnixMicro()
	}
	res, err := batchRecordScript.Run(ctx, s.rdb, s.keys(e.Batch).all(), e.N, e.Owner, e.Attempt, op, actionID, reason,
		lease, s.cfg.Retention.Milliseconds()).Slice()
	if err != nil {
		return BatchEntry{}, false, unavailable("record "+op+" of "+e.Marker(), err)
	}
	if res[0] == "lost" {
		return BatchEntry{}, false, fmt.Errorf("%s: %w", e.Marker(), ErrLostClaim)
	}
	out, err := decodeEntry(e.Batch, strconv.Itoa(e.N), res[1].(string))
	return out, res[2].(int64) == 1, err
}

// Stop stops a running batch: no entry is claimed any more, apart from
// claims of dead replicas, which are reconciled. It returns the batch and
// whether this call stopped it (false: it was already stopped or done).
func (s *Batches) Stop(ctx context.Context, id, by string) (Batch, bool, error) {
	n, err := batchStopScript.Run(ctx, s.rdb, s.keys(id).all(), by, s.cfg.Now().UnixMicro(), s.cfg.Retention.Milliseconds()).Int()
	if err != nil {
		return Batch{}, false, unavailable("stop batch "+id, err)
	}
	if n < 0 {
		return Batch{}, false, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	b, err := s.GetBatch(ctx, id)
	return b, n == 1, err
}

// Ping checks that Redis answers.
func (s *Batches) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping redis", err)
	}
	return nil
}
