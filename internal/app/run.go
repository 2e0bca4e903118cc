package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Names of the shutdown steps, as errors and logs report them.
const (
	stepIntake     = "stop taking envelopes"
	stepInFlight   = "finish in-flight deliveries"
	stepBackground = "stop background work"
	stepHTTP       = "stop the HTTP server"
	stepRedis      = "close Redis"
)

// shutdownStep is one step of the shutdown: what it stops and its share of
// SHUTDOWN_TIMEOUT.
type shutdownStep struct {
	name  string
	share float64
	stop  func(a *App, ctx context.Context, budget time.Duration) error
}

// shutdownSteps is the order in which Run stops the parts, and each step's
// share of SHUTDOWN_TIMEOUT (they sum to 1). Intake stops first so no new
// work arrives; deliveries already taken still reach Slack and Redis; the
// scheduler stops before background work is cancelled so it cannot start
// more; /healthz, /readyz and /metrics stay up until the work is done;
// Redis closes last because everything before may still write to it.
var shutdownSteps = []shutdownStep{
	// Socket Mode closes: Slack sends new envelopes to other replicas.
	{stepIntake, 0, (*App).stopTransport},
	// The Runner drains its queue and running handlers (its DrainTimeout is
	// this share), then cancels what is left.
	{stepInFlight, 0.5, (*App).finishInFlight},
	// The scheduler loop stops, then the waits of background executions and
	// followers end while MDE calls in flight finish and are recorded;
	// calls still running when the share is spent are cancelled, and a
	// scheduler reconciles what was cut.
	{stepBackground, 0.3, (*App).stopBackground},
	{stepHTTP, 0.2, (*App).stopHTTP},
	{stepRedis, 0, (*App).closeRedis},
}

// budget is step's share of SHUTDOWN_TIMEOUT.
func (a *App) budget(step string) time.Duration {
	for _, s := range shutdownSteps {
		if s.name == step {
			return time.Duration(s.share * float64(a.cfg.ShutdownTimeout))
		}
	}
	panic("app: unknown shutdown step " + step)
}

// Run serves until ctx ends or a part fails (the ops HTTP server, or Slack
// refusing the app token), then shuts down in the order of shutdownSteps
// within SHUTDOWN_TIMEOUT and returns. A normal stop (ctx ended) returns nil;
// otherwise the error says which part failed or which step ran over. Run
// may be called once; it releases everything New acquired.
func (a *App) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("app: Run called twice")
	}
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	// The parts run on contexts of their own, so each stops at its step.
	base := context.WithoutCancel(ctx)
	if a.srv != nil {
		a.httpDone = make(chan struct{})
		go func() {
			defer close(a.httpDone)
			if err := a.srv.Serve(a.ln); !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("ops HTTP server on %s: %w", a.Addr(), err))
			}
		}()
	}
	a.startScheduler(base)
	a.startDrain(base)
	if a.runner != nil {
		tctx, stop := context.WithCancel(base)
		a.stopIntake, a.transportDone = stop, make(chan struct{})
		go func() {
			defer close(a.transportDone)
			// Run returns early only when Slack refuses the token; then
			// the whole app stops (finishInFlight reports the error).
			if a.transportErr = a.runner.Run(tctx); a.transportErr != nil {
				fail(nil)
			}
		}()
		a.log.Info().Str("http_addr", a.Addr()).Msg("serving")
	}

	<-ctx.Done()
	a.log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(base, a.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
		errs = append(errs, cause)
	}
	for _, s := range shutdownSteps {
		b := a.budget(s.name)
		stepCtx, cancel := context.WithTimeout(sctx, b)
		if err := s.stop(a, stepCtx, b); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if len(errs) == 0 {
		a.log.Info().Msg("stopped")
	}
	return errors.Join(errs...)
}

func (a *App) stopTransport(context.Context, time.Duration) error {
	if a.stopIntake != nil {
		a.stopIntake()
	}
	return nil
}

// finishInFlight waits for the Runner to return. It bounds its own drain by
// this step's budget (its DrainTimeout) and then cancels the handlers left,
// which return promptly; waiting here for that keeps Redis open for them.
func (a *App) finishInFlight(context.Context, time.Duration) error {
	if a.transportDone == nil {
		return nil
	}
	<-a.transportDone
	if a.transportErr != nil {
		return fmt.Errorf("slack: %w", a.transportErr)
	}
	return nil
}

// stopBackground ends the waits of background work at once (queued calls,
// back-offs, status polling: their leases hand them to other replicas) but
// lets MDE calls in flight finish and be recorded, within this step's
// budget; only when that runs out are they cancelled.
func (a *App) stopBackground(ctx context.Context, budget time.Duration) error {
	a.stopScheduler()
	a.stopDrain()
	a.svc.Stop()
	if !waitFor(ctx, a.svc.Wait) {
		a.svc.Abort()
		return fmt.Errorf("background work still running after %s; cancelled, a scheduler will reconcile it on the next start", budget)
	}
	return nil
}

func (a *App) stopHTTP(ctx context.Context, _ time.Duration) error {
	if a.srv == nil {
		return nil
	}
	err := a.srv.Shutdown(ctx)
	<-a.httpDone
	if err != nil {
		return fmt.Errorf("ops HTTP server shutdown: %w", err)
	}
	return nil
}

func (a *App) closeRedis(context.Context, time.Duration) error {
	if err := a.release(); err != nil {
		return fmt.Errorf("close Redis: %w", err)
	}
	return nil
}

// FinishBackground stops the scheduler loop, so no new background work
// starts, and waits until the background work already running (executions,
// status following) ends by itself, or ctx ends (its error is returned).
// The console calls it at end of input so a piped script sees the outcome;
// Run's shutdown then stops whatever is left.
func (a *App) FinishBackground(ctx context.Context) error {
	a.stopScheduler()
	a.stopDrain()
	if !waitFor(ctx, a.svc.Wait) {
		return ctx.Err()
	}
	return nil
}

// startScheduler runs a scheduler pass every cfg.SchedulerEvery until
// stopScheduler: stopping the loop and stopping the background work it
// started are separate shutdown steps.
func (a *App) startScheduler(base context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.o.NoScheduler || a.schedEnded {
		return
	}
	ctx, stop := context.WithCancel(base)
	a.schedStop, a.schedDone = stop, make(chan struct{})
	go func() {
		defer close(a.schedDone)
		t := time.NewTicker(a.cfg.SchedulerEvery)
		defer t.Stop()
		for {
			if err := a.svc.Tick(ctx); err != nil && ctx.Err() == nil {
				a.log.Error().Err(err).Msg("scheduler pass failed; retrying next tick")
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// stopScheduler stops the loop and waits for its current pass; it is safe
// to call more than once, and before Run started the loop.
func (a *App) stopScheduler() {
	a.mu.Lock()
	a.schedEnded = true
	stop, done := a.schedStop, a.schedDone
	a.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// waitFor runs wait and reports whether it returned before ctx ended.
func waitFor(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
