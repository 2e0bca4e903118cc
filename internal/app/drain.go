package app

import (
	"context"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/internal/ops"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// drainLoop is outbreak mode's drain loop on this replica (issue 11): it
// runs beside the scheduler and stops in the same shutdown step as the
// background work (stopBackground), and at FinishBackground.
type drainLoop struct {
	d    *commands.Drainer
	stop context.CancelFunc // nil until started
}

// newDrainer puts the batch store (Redis, or memory with the rest of the
// state) and a gate that refuses rather than queues, over the same limiter
// as every other MDE call, under the service.
func (a *App) newDrainer(metrics *ops.Metrics) *commands.Drainer {
	bcfg := store.BatchesConfig{Prefix: a.cfg.RedisPrefix, Retention: a.cfg.AuditRetention, Now: a.o.Now}
	var batches interface {
		commands.Batches
		commands.Plans
	} = store.NewMemoryBatches(bcfg)
	if a.rdb != nil {
		batches = store.NewBatches(a.rdb, bcfg)
	}
	gate := ratelimit.NewGate(ops.InstrumentLimiter(a.mde.limiter, metrics), 0, a.o.Now, a.o.Log)
	// Without the scheduler (the console) there is no drain loop: each
	// batch it starts is drained by its own background work, so a try-out
	// never takes over a bot's batch and its end-of-input wait covers its own.
	return commands.NewDrainer(a.svc, commands.DrainDeps{Batches: batches, Plans: batches, Gate: gate, OwnOnly: a.o.NoScheduler})
}

// Drainer starts, stops and reads outbreak batches.
func (a *App) Drainer() *commands.Drainer { return a.drain.d }

// startDrain runs the drain loop unless the scheduler is off or already
// ended: like the scheduler, it takes over work of other replicas (claims
// whose lease ran out), which a console try-out must not.
func (a *App) startDrain(base context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.o.NoScheduler || a.schedEnded || a.drain.stop != nil {
		return
	}
	ctx, stop := context.WithCancel(base)
	a.drain.stop = stop
	a.drain.d.Start(ctx)
}

// stopDrain ends the loop's waits so it claims nothing more; an MDE call
// in flight finishes within the background step's budget (svc.Wait).
func (a *App) stopDrain() {
	a.mu.Lock()
	stop := a.drain.stop
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}
