package commands

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/store"
)

// drainRig is outbreak mode's execution as production runs it: replicas
// (Service + Drainer each, with their own Redis connection pools) on one
// real redis-server, the real MDE client against the fake MDE over HTTP,
// which enforces MDE's two windows exactly (scaled down) and answers 429
// beyond them. The limiter's windows are the fake's plus a margin, as
// production's 61 s and 3,605 s are MDE's minute and hour plus one.
type drainRig struct {
	tb       testing.TB
	mde      *fakemde.Server
	rdb      *redis.Client // for commandstats and reads
	limit    fakemde.Limit
	machines []string
	replicas []*drainReplica
	// Round trips to Redis by part (go-redis hooks on every replica's
	// clients): the limiter, the batch store, the audit log.
	limiterRounds, batchRounds, auditRounds atomic.Int64
}

type drainReplica struct {
	svc   *Service
	drain *Drainer
	def   *killableDefender
}

// rigOptions size a rig.
type rigOptions struct {
	machines int
	replicas int
	limit    fakemde.Limit // MDE's windows, scaled
	margin   time.Duration // added to the limiter's windows
	// killAt > 0: replica 0 is killed right after its call that brings
	// MDE's isolate count to killAt: the call reached MDE, its outcome is
	// never recorded.
	killAt int
}

func newDrainRig(tb testing.TB, o rigOptions) *drainRig {
	rs := redistest.Start(tb) // own server: commandstats are this rig's
	rig := &drainRig{tb: tb, mde: fakemde.New(tb, nil), limit: o.limit}
	rig.rdb = rs.Client()
	tb.Cleanup(func() { _ = rig.rdb.Close() })
	all := fakemde.Limits{Budgets: map[string]fakemde.Limit{}}
	for _, b := range []string{defender.BudgetIsolate, defender.BudgetUnisolate, defender.BudgetMachineActions, defender.BudgetMachines} {
		all.Budgets[b] = o.limit
	}
	rig.mde.EnforceLimits(all)
	for i := range o.machines {
		id := fmt.Sprintf("%040x", 0xb000+i)
		if err := rig.mde.Sim.AddMachine(defender.Machine{ID: id, ComputerDNSName: fmt.Sprintf("ws-%04d.corp.example", i),
			OSPlatform: "Windows11", HealthStatus: "Active", OnboardingStatus: "Onboarded"}); err != nil {
			tb.Fatal(err)
		}
		rig.machines = append(rig.machines, id)
	}
	lim := ratelimit.Limits{PerMinute: o.limit.Short.Calls, PerHour: o.limit.Long.Calls,
		Minute: o.limit.Short.Length + o.margin, Hour: o.limit.Long.Length + o.margin}
	var once sync.Once
	for i := range o.replicas {
		rig.replicas = append(rig.replicas, rig.newReplica(i, rs.Addr, lim, o.killAt, &once))
	}
	tb.Cleanup(func() {
		for _, r := range rig.replicas {
			r.svc.Abort()
			r.svc.Wait()
		}
	})
	return rig
}

// newReplica is one bot replica: its own Redis clients, limiter, gates,
// MDE client, store and drainer.
func (rig *drainRig) newReplica(i int, addr string, lim ratelimit.Limits, killAt int, once *sync.Once) *drainReplica {
	tb := rig.tb
	client := func(rounds *atomic.Int64) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr})
		c.AddHook(countHook{rounds})
		tb.Cleanup(func() { _ = c.Close() })
		return c
	}
	log := zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.ErrorLevel)
	limiter := ratelimit.New(client(&rig.limiterRounds), limiterConfig(lim, nil))
	client2, err := defender.New(mdeConfig(defender.Config{APIURL: rig.mde.URL(), AuthorityHost: rig.mde.URL(), TenantID: fakemde.TenantID,
		ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret, HTTPClient: rig.mde.HTTPClient(),
		Gate: ratelimit.NewGate(limiter, time.Minute, nil, log), Logger: log}))
	if err != nil {
		tb.Fatal(err)
	}
	kd := &killableDefender{Defender: client2}
	if i == 0 && killAt > 0 {
		kd.killAt, kd.count, kd.once = killAt, func() int { return rig.mde.Count(fakemde.OpIsolate) }, once
	}
	scfg := storeConfig(nil)
	scfg.Prefix = "drain"
	approvals := store.NewApprovals(client(&rig.auditRounds), scfg)
	cfg := testConfig()
	cfg.CallTimeout = time.Second // lease 2 s: a killed replica's claim comes back soon
	svc := New(cfg, Deps{Defender: kd, Approvals: approvals, Gate: ratelimit.NewGate(limiter, time.Minute, nil, log),
		Messenger: (&recorder{}).messenger(), Logger: log, Version: "test"})
	kd.kill = svc.Abort
	drain := NewDrainer(svc, DrainDeps{
		Batches: store.NewBatches(client(&rig.batchRounds), store.BatchesConfig{Prefix: "drain", Retention: time.Hour}),
		Gate:    ratelimit.NewGate(limiter, 0, nil, log),
		Owner:   fmt.Sprintf("replica-%d", i),
	})
	return &drainReplica{svc: svc, drain: drain, def: kd}
}

// killableDefender is the real client; when told, it kills its replica
// (Abort: every context cancelled) right after a call reached MDE, as a
// crash between the call and recording it would.
type killableDefender struct {
	Defender
	killAt int
	count  func() int
	once   *sync.Once
	kill   func()
	killed atomic.Bool
}

func (k *killableDefender) Isolate(ctx context.Context, slot defender.Slot, id string, t defender.IsolationType, c string) (defender.MachineAction, error) {
	a, err := k.Defender.Isolate(ctx, slot, id, t, c)
	if k.killAt > 0 && err == nil && k.count() >= k.killAt {
		k.once.Do(func() {
			k.killed.Store(true)
			k.kill()
		})
		if k.killed.Load() {
			return defender.MachineAction{}, context.Canceled
		}
	}
	return a, err
}

// countHook counts round trips to Redis (a pipeline is one).
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// start creates the batch on replica 0 and starts every replica's loop.
func (rig *drainRig) start() store.Batch {
	var entries []store.BatchEntry
	for _, m := range rig.machines {
		entries = append(entries, store.BatchEntry{MachineID: m})
	}
	b, err := rig.replicas[0].drain.StartBatch(context.Background(), store.Batch{RequestID: "r-1", Command: store.Isolate,
		IsolationType: "Full", Comment: "ransomware outbreak", Requester: analyst, Approvers: []string{boss, boss2}}, entries)
	if err != nil {
		rig.tb.Fatal(err)
	}
	for _, r := range rig.replicas {
		r.drain.Start(context.Background())
	}
	return b
}

// wait waits for the n-th call at MDE (which costs Redis nothing, so the
// figures count only the replicas' commands), then polls the batch until
// it is finished or timeout passes.
func (rig *drainRig) wait(id string, n int, timeout time.Duration) store.Batch {
	deadline := time.Now().Add(timeout)
	if err := rig.mde.WaitCount(fakemde.OpIsolate, n, timeout); err != nil {
		rig.tb.Fatal(err)
	}
	for {
		b, err := rig.replicas[len(rig.replicas)-1].drain.Progress(context.Background(), id)
		if err == nil && b.Finished() {
			return b
		}
		if time.Now().After(deadline) {
			rig.tb.Fatalf("batch %s not finished after %s: %+v, %v", id, timeout, b.Counts, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// drainFigures are the performance figures for one run: MDE's
// (fakemde.Figures) and Redis's.
type drainFigures struct {
	fakemde.Figures
	redisCommands int64 // server side, scripts' inner commands included
	// Round trips by part.
	limiterRounds, batchRounds, auditRounds int64
}

func (rig *drainRig) figures() drainFigures {
	f := drainFigures{Figures: rig.mde.Figures(rig.limit)}
	n, err := redistest.CommandCalls(context.Background(), rig.rdb)
	if err != nil {
		rig.tb.Fatal(err)
	}
	f.redisCommands = n
	f.limiterRounds, f.batchRounds, f.auditRounds = rig.limiterRounds.Load(), rig.batchRounds.Load(), rig.auditRounds.Load()
	return f
}
