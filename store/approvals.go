package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ApprovalsConfig configures Approvals and MemoryApprovals. Every field but
// Now is required; internal/app passes internal/config's values.
type ApprovalsConfig struct {
	// Prefix is the hash tag of every key: "{<Prefix>}:req:<id>" and so on,
	// so all keys live in one Redis Cluster slot and scripts may touch them
	// together. Deployments (or tests) sharing a Redis use different
	// prefixes.
	Prefix string
	// Retention (AUDIT_RETENTION) is how long a request record, its machine
	// index and its per-request audit stream are kept after creation or
	// their last update, and the age past which global audit entries are
	// trimmed.
	Retention time.Duration
	// AuditMaxLen caps the global audit stream at about this many entries
	// (MAXLEN ~), whatever their age, so a flood of events cannot grow it
	// without bound.
	AuditMaxLen int64
	// Now is the clock for CreatedAt, DecidedAt, UpdatedAt and for comparing
	// ExpiresAt and CheckAt; nil means time.Now. Unlike the limiter, which
	// reads Redis's TIME, record times come from the clock of the replica
	// that writes them, so replicas must keep their clocks in sync (NTP).
	// Key TTLs (Retention, FirstDelivery) and audit entry ids run on Redis's
	// clock.
	Now func() time.Time
}

// auditPerRequestMaxLen caps one request's audit stream (MAXLEN ~): a
// request has a few dozen events; this only guards against a runaway loop.
const auditPerRequestMaxLen = 1000

// createRetries bounds how often Create re-reads the machine index when
// another replica changed it between the read and the script.
const createRetries = 10

// checked returns c with a nil clock set to time.Now. It panics when a
// value is missing: the store keeps no defaults of its own.
func (c ApprovalsConfig) checked() ApprovalsConfig {
	var missing []string
	for _, f := range []struct {
		name string
		zero bool
	}{
		{"Prefix", c.Prefix == ""},
		{"Retention", c.Retention <= 0},
		{"AuditMaxLen", c.AuditMaxLen <= 0},
	} {
		if f.zero {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		panic(fmt.Sprintf("store: ApprovalsConfig.%s not set; internal/app passes internal/config's value", strings.Join(missing, ", ApprovalsConfig.")))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// approvalKeys builds the key names; scripts receive them in KEYS.
type approvalKeys struct{ tag string }

func (k approvalKeys) req(id string) string      { return k.tag + ":req:" + id }
func (k approvalKeys) machine(id string) string  { return k.tag + ":machine:" + id }
func (k approvalKeys) due() string               { return k.tag + ":due" }
func (k approvalKeys) seq() string               { return k.tag + ":seq" }
func (k approvalKeys) audit() string             { return k.tag + ":audit" }
func (k approvalKeys) auditOf(id string) string  { return k.tag + ":audit:" + id }
func (k approvalKeys) seen() string              { return k.tag + ":seen" }
func (k approvalKeys) hits(key string) string    { return k.tag + ":hits:" + key }
func newApprovalKeys(prefix string) approvalKeys { return approvalKeys{tag: "{" + prefix + "}"} }

var (
	//go:embed approvals_create.lua
	createSrc string
	//go:embed approvals_transition.lua
	transitionSrc string

	createScript     = redis.NewScript(createSrc)
	transitionScript = redis.NewScript(transitionSrc)
)

// Approvals is the Redis-backed request store, delivery de-duplication and
// audit log, shared by all replicas. Every state change is one Lua script,
// so a compare-and-set is atomic across replicas. Every Redis failure is
// returned wrapping ErrUnavailable. Safe for concurrent use.
type Approvals struct {
	rdb  redis.UniversalClient
	cfg  ApprovalsConfig
	keys approvalKeys
}

// NewApprovals returns an Approvals on rdb (a Client, ClusterClient or
// failover client). It panics when cfg lacks a value.
func NewApprovals(rdb redis.UniversalClient, cfg ApprovalsConfig) *Approvals {
	cfg = cfg.checked()
	return &Approvals{rdb: rdb, cfg: cfg, keys: newApprovalKeys(cfg.Prefix)}
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// Ping checks that Redis answers.
func (a *Approvals) Ping(ctx context.Context) error {
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping redis", err)
	}
	return nil
}

// Create stores r as pending. It assigns ID ("r-<n>", increasing but not
// dense: a refused Create uses up a number), CreatedAt, UpdatedAt, CheckAt
// (= ExpiresAt) and Version 1, indexes the machine and schedules CheckAt.
// *PendingError if the machine already has an open request; that includes
// a pending request past its ExpiresAt that nobody has expired yet (expire
// it with Transition, then Create again).
func (a *Approvals) Create(ctx context.Context, r Request) (Request, error) {
	r, err := prepareCreate(r, a.cfg.Now())
	if err != nil {
		return Request{}, err
	}
	mkey := a.keys.machine(r.MachineID)
	// IDs come from INCR, outside the script, because the script must be
	// given its record key. Read the machine index in the same round trip.
	var seq *redis.IntCmd
	var cur *redis.StringCmd
	_, err = a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		seq = p.Incr(ctx, a.keys.seq())
		cur = p.Get(ctx, mkey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Request{}, unavailable("create request", err)
	}
	if seq.Err() != nil || seq.Val() <= 0 {
		return Request{}, unavailable("create request", fmt.Errorf("allocate id: %v", seq.Err()))
	}
	r.ID = "r-" + strconv.FormatInt(seq.Val(), 10)
	existing := cur.Val()
	fields := encodeRequest(r)
	for range createRetries {
		existingKey := a.keys.req(r.ID) // placeholder when there is none: same slot, never read
		if existing != "" {
			existingKey = a.keys.req(existing)
		}
		args := make([]any, 0, 4+len(fields))
		args = append(args, existing, a.cfg.Retention.Milliseconds(), r.ID, micros(r.CheckAt))
		args = append(args, fields...)
		res, err := createScript.Run(ctx, a.rdb,
			[]string{a.keys.req(r.ID), mkey, a.keys.due(), existingKey}, args...).Slice()
		if err != nil {
			return Request{}, unavailable("create request", err)
		}
		status, _ := res[0].(string)
		switch status {
		case "ok":
			return r, nil
		case "open":
			ex, err := decodeReply(existing, res[1])
			if err != nil {
				return Request{}, err
			}
			return Request{}, &PendingError{Existing: ex}
		case "retry":
			// Another replica moved the index between our read and the
			// script: take its new value and try again.
			existing, _ = res[1].(string)
		default:
			return Request{}, fmt.Errorf("create request %s: unexpected script reply %q", r.ID, status)
		}
	}
	return Request{}, fmt.Errorf("create request for machine %s: index kept changing, try again", r.MachineID)
}

// prepareCreate validates r and fills in what Create assigns (except ID).
func prepareCreate(r Request, now time.Time) (Request, error) {
	if r.MachineID == "" {
		return Request{}, errors.New("create request: machine id is empty")
	}
	if r.ExpiresAt.IsZero() {
		return Request{}, fmt.Errorf("create request for machine %s: ExpiresAt must be set", r.MachineID)
	}
	now = normTime(now)
	r.State = Pending
	r.CreatedAt, r.UpdatedAt = now, now
	r.CheckAt = r.ExpiresAt
	r.Version = 1
	r.DecidedBy, r.DecidedAt = "", time.Time{}
	r.ApprovedBy = nil
	if r.Needs < 0 {
		return Request{}, fmt.Errorf("create request for machine %s: Needs %d is negative", r.MachineID, r.Needs)
	}
	return normRequest(r), nil
}

// Get returns the request, or ErrNotFound.
func (a *Approvals) Get(ctx context.Context, id string) (Request, error) {
	m, err := a.rdb.HGetAll(ctx, a.keys.req(id)).Result()
	if err != nil {
		return Request{}, unavailable("get request "+id, err)
	}
	if len(m) == 0 {
		return Request{}, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	return decodeRequest(id, m)
}

// Transition moves request id from `from` to ch.To atomically; see
// commands.Approvals. *ConflictError (with the current record) when the
// state is not from, the version is not ch.IfVersion, or from → ch.To is
// not allowed; a pending request past ExpiresAt is expired by the same
// script (DecidedBy "system") and reported as a conflict, unless ch.To is
// expired or cancelled. ErrNotFound for an unknown id.
func (a *Approvals) Transition(ctx context.Context, id string, from State, ch Change) (Request, error) {
	// The script must be given the machine key: read the (immutable)
	// machine id first.
	machine, err := a.rdb.HGet(ctx, a.keys.req(id), fMachine).Result()
	if errors.Is(err, redis.Nil) {
		return Request{}, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Request{}, unavailable("transition request "+id, err)
	}
	now := normTime(a.cfg.Now())
	at := now
	if !ch.At.IsZero() {
		at = normTime(ch.At)
	}
	allowed := "0"
	if Allowed(from, ch.To) {
		allowed = "1"
	}
	res, err := transitionScript.Run(ctx, a.rdb,
		[]string{a.keys.req(id), a.keys.due(), a.keys.machine(machine)},
		id, string(from), string(ch.To), ch.IfVersion, micros(now), micros(at),
		a.cfg.Retention.Milliseconds(), allowed, ch.By,
		micros(ch.RunAt), micros(ch.CheckAt), ch.MachineActionID, ch.Note, ch.MessageTS, ch.Channel,
	).Slice()
	if err != nil {
		return Request{}, unavailable("transition request "+id, err)
	}
	status, _ := res[0].(string)
	if status == "notfound" { // expired by TTL between HGET and the script
		return Request{}, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	cur, err := decodeReply(id, res[1])
	if err != nil {
		return Request{}, err
	}
	switch status {
	case "ok":
		return cur, nil
	case "conflict":
		return Request{}, &ConflictError{Current: cur, Want: ch.To}
	}
	return Request{}, fmt.Errorf("transition request %s: unexpected script reply %q", id, status)
}

// ForMachine returns the machine's open request, else its latest one;
// ErrNotFound if it has none (or they have passed Retention).
func (a *Approvals) ForMachine(ctx context.Context, machineID string) (Request, error) {
	// Create refuses while a request is open, so the latest request is the
	// open one if there is one.
	id, err := a.rdb.Get(ctx, a.keys.machine(machineID)).Result()
	if errors.Is(err, redis.Nil) {
		return Request{}, fmt.Errorf("machine %s: %w", machineID, ErrNotFound)
	}
	if err != nil {
		return Request{}, unavailable("find request for machine "+machineID, err)
	}
	return a.Get(ctx, id)
}

// Due returns up to limit non-terminal requests whose CheckAt is at or
// before now, oldest CheckAt first. Ids whose record has passed Retention
// are dropped from the schedule.
func (a *Approvals) Due(ctx context.Context, limit int) ([]Request, error) {
	if limit <= 0 {
		return nil, nil
	}
	nowT := normTime(a.cfg.Now())
	now := micros(nowT)
	var out []Request
	// A second round is needed only when stale ids were dropped.
	for round := 0; round < 5 && len(out) < limit; round++ {
		ids, err := a.rdb.ZRangeByScore(ctx, a.keys.due(), &redis.ZRangeBy{
			Min: "-inf", Max: now, Offset: int64(len(out)), Count: int64(limit - len(out)),
		}).Result()
		if err != nil {
			return nil, unavailable("list due requests", err)
		}
		if len(ids) == 0 {
			break
		}
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		_, err = a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HGetAll(ctx, a.keys.req(id))
			}
			return nil
		})
		if err != nil {
			return nil, unavailable("list due requests", err)
		}
		var stale []any
		for i, c := range cmds {
			m := c.Val()
			if len(m) == 0 {
				stale = append(stale, ids[i])
				continue
			}
			r, err := decodeRequest(ids[i], m)
			if err != nil {
				return nil, err
			}
			if r.State.Terminal() { // cannot happen: scripts unschedule terminal requests
				stale = append(stale, ids[i])
				continue
			}
			if r.CheckAt.After(nowT) {
				// Rescheduled between the range and the read (another
				// replica claimed or renewed it): not due any more.
				continue
			}
			out = append(out, r)
		}
		if len(stale) == 0 {
			break
		}
		if err := a.rdb.ZRem(ctx, a.keys.due(), stale...).Err(); err != nil {
			return nil, unavailable("drop expired requests from schedule", err)
		}
	}
	return out, nil
}

// Pending counts pending requests (for a gauge). It reads every scheduled
// (non-terminal) request's state: a few dozen at most.
func (a *Approvals) Pending(ctx context.Context) (int, error) {
	ids, err := a.rdb.ZRange(ctx, a.keys.due(), 0, -1).Result()
	if err != nil {
		return 0, unavailable("count pending requests", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, a.keys.req(id), fState)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, unavailable("count pending requests", err)
	}
	n := 0
	for _, c := range cmds {
		if c.Val() == string(Pending) {
			n++
		}
	}
	return n, nil
}

// decodeReply decodes a flat HGETALL array returned by a script.
func decodeReply(id string, v any) (Request, error) {
	arr, _ := v.([]any)
	if len(arr) == 0 {
		return Request{}, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	m := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		m[k] = val
	}
	return decodeRequest(id, m)
}
