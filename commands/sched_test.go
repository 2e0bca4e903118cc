package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/internal/testclock"
	"github.com/soc/isolate-bot/store"
)

// TestQueuedBehindRateLimit: with one isolate a second allowed, the second
// approved request is told when it will run, records RunAt, and runs by
// itself at that time.
func TestQueuedBehindRateLimit(t *testing.T) {
	var e *env
	e = newEnv(t, func(e *env) {
		lim := oneAMinute(e.clk.Now, time.Second)
		e.gate = newGate(lim, e.cfg.QueueMaxWait, e.clk.Now)
	})
	t0 := e.clk.Now()
	e.command(analyst, "/isolate", "web-01.contoso.local full first")
	e.command(analyst, "/isolate", "web-02.contoso.local full second")
	e.click(e.svc, "r-1", boss, true)
	waitFor(t, "r-1 done", func() bool { return e.get("r-1").MachineActionID != "" })
	start := time.Now()
	e.click(e.svc, "r-2", boss, true)
	waitFor(t, "r-2 done", func() bool { return e.get("r-2").MachineActionID != "" })
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("r-2 ran after %v, before its slot", waited)
	}
	r2 := e.get("r-2")
	if !r2.RunAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("RunAt %v, want %v", r2.RunAt, t0.Add(time.Second))
	}
	if !e.rec.hasReply("Queued behind the MDE rate limit; expected to run at 09:00:01 UTC.") {
		t.Fatalf("thread %q", e.rec.replyTexts())
	}
	e.clk.Advance(time.Minute)
	e.svc.Wait()
	// Queued, then sent; status changes follow until the action is final.
	if h := e.history("r-2"); !strings.Contains(strings.Join(h, ","), store.EventQueued+","+store.EventMDECall+",") || h[len(h)-1] != store.EventDone {
		t.Fatalf("audit %v", h)
	}
	if n := e.posts.Load(); n != 2 {
		t.Fatalf("%d POSTs", n)
	}
}

func TestQueueBeyondMaxWaitFails(t *testing.T) {
	e := newEnv(t, func(e *env) {
		e.cfg.QueueMaxWait = 30 * time.Second
		e.gate = newGate(oneAMinute(e.clk.Now, time.Minute), e.cfg.QueueMaxWait, e.clk.Now)
	})
	e.command(analyst, "/isolate", "web-01.contoso.local full first")
	e.command(analyst, "/isolate", "web-02.contoso.local full second")
	e.click(e.svc, "r-1", boss, true)
	waitFor(t, "r-1 done", func() bool { return e.get("r-1").MachineActionID != "" })
	e.click(e.svc, "r-2", boss, true)
	if got := e.finish("r-2"); got.State != store.Failed {
		t.Fatalf("state %s", got.State)
	}
	// Refused with the earliest slot, before any call.
	ev, ok := e.event("r-2", store.EventFailed)
	if !ok || !strings.Contains(ev.Reason, hhmmss(testclock.Start.Add(time.Minute))) || slices.Contains(e.history("r-2"), store.EventMDECall) {
		t.Fatalf("failed event %+v (found %v), audit %v", ev, ok, e.history("r-2"))
	}
	if len(simActions(t, e.sim, defender.SimWeb02)) != 0 {
		t.Fatal("MDE was called")
	}
}

// TestLimiterDownNothingSent: with the limiter's store down nothing reaches
// MDE, the thread hears it once, and the scheduler finishes the job once
// the store is back.
func TestLimiterDownNothingSent(t *testing.T) {
	var lim *downLimiter
	e := newEnv(t, func(e *env) {
		lim = &downLimiter{Backend: ratelimit.NewMemory(limiterConfig(ratelimit.Limits{}, e.clk.Now))}
		g := newGate(lim, e.cfg.QueueMaxWait, e.clk.Now)
		e.sim.Gate, e.gate = g, g
	})
	r := e.request() // the GETs pass: the limiter is still up
	lim.down.Store(true)
	e.click(e.svc, r.ID, boss, true)
	e.svc.Wait()
	if got := e.get(r.ID); got.State != store.Executing || got.Note != noteStoreDown {
		t.Fatalf("request %+v", got)
	}
	countDown := func() (n int) {
		for _, s := range e.rec.replyTexts() {
			if strings.Contains(s, "state store unavailable") {
				n++
			}
		}
		return n
	}
	for range 2 { // still down: the scheduler retries quietly
		e.clk.Advance(time.Minute)
		if err := e.svc.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.svc.Wait()
	}
	if n := countDown(); n != 1 {
		t.Fatalf("thread told %d times about the outage: %q", n, e.rec.replyTexts())
	}
	lim.down.Store(false)
	if len(simActions(t, e.sim, defender.SimWeb01)) != 0 {
		t.Fatal("MDE was called while the limiter was down")
	}
	e.clk.Advance(time.Minute)
	if err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.finish(r.ID); got.State != store.Done || len(simActions(t, e.sim, defender.SimWeb01)) != 1 {
		t.Fatalf("request %+v", got)
	}
}

// replicaScenario brings r-1 into the state two replicas race on.
type replicaScenario struct {
	name string
	// prepare brings r-1 into the state to race on; true: race on clicks.
	prepare func(t *testing.T, e *env, r store.Request) bool
	posts   int32 // 0: reconciled, the action found by its marker
}

func replicaScenarios() []replicaScenario {
	return []replicaScenario{
		{"both approvers click on different replicas", func(*testing.T, *env, store.Request) bool { return true }, 1},
		{"approved but the claimer died", func(t *testing.T, e *env, r store.Request) bool {
			if _, err := e.store.Transition(context.Background(), r.ID, store.Pending, store.Change{To: store.Approved, By: boss, CheckAt: e.clk.Now()}); err != nil {
				t.Fatal(err)
			}
			return false
		}, 1},
		{"executing, died before the POST", func(t *testing.T, e *env, r store.Request) bool {
			ctx := context.Background()
			if _, err := e.store.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Approved, By: boss, CheckAt: e.clk.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.Transition(ctx, r.ID, store.Approved, store.Change{To: store.Executing, CheckAt: e.clk.Now().Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(2 * time.Second)
			return false
		}, 1},
		{"executing, died after the POST", func(t *testing.T, e *env, r store.Request) bool {
			ctx := context.Background()
			a, err := e.store.Transition(ctx, r.ID, store.Pending, store.Change{To: store.Approved, By: boss, CheckAt: e.clk.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.Transition(ctx, r.ID, store.Approved, store.Change{To: store.Executing, CheckAt: e.clk.Now().Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.sim.Isolate(ctx, nil, r.MachineID, defender.Full, MDEComment(a)); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(2 * time.Second)
			return false
		}, 0},
	}
}

// replicas runs the multi-replica scenarios against one shared Approvals.
func replicas(t *testing.T, newStore func(e *env) Approvals) {
	for _, sc := range replicaScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			e := newEnv(t, func(e *env) { e.store = newStore(e) })
			other := e.newService()
			r := e.request()
			clicks := sc.prepare(t, e, r)
			var wg sync.WaitGroup
			for i, svc := range []*Service{e.svc, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if clicks {
						e.click(svc, r.ID, []string{boss, boss2}[i], true)
						return
					}
					if err := svc.Tick(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			// Only once the action is recorded may the clock jump: a jump
			// mid-flight would expire the sender's lease, a legitimate
			// takeover but not this scenario.
			waitFor(t, "the action recorded", func() bool { return e.get(r.ID).MachineActionID != "" })
			e.clk.Advance(time.Minute)
			e.svc.Wait()
			other.Wait()
			if n := e.posts.Load(); n != sc.posts {
				t.Fatalf("%d POSTs, want %d", n, sc.posts)
			}
			if acts := simActions(t, e.sim, defender.SimWeb01); len(acts) != 1 || e.get(r.ID).MachineActionID != acts[0].ID {
				t.Fatalf("MDE holds %d actions", len(acts))
			}
			if got := e.get(r.ID); got.State != store.Done {
				t.Fatalf("request %s, want done", got.State)
			}
		})
	}
}

func TestReplicasMemoryStore(t *testing.T) {
	replicas(t, func(e *env) Approvals { return e.mem })
}

func TestReplicasRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	var rdb *redis.Client = srv.Client()
	n := 0
	replicas(t, func(e *env) Approvals {
		n++
		cfg := storeConfig(e.clk.Now)
		cfg.Prefix = fmt.Sprintf("cmdtest%d", n)
		return store.NewApprovals(rdb, cfg)
	})
}

// TestStopWhileQueued: shutting down while queued sends nothing, frees the
// slot and leaves the request executing for a scheduler to resume.
func TestStopWhileQueued(t *testing.T) {
	var lim *ratelimit.Memory
	e := newEnv(t, func(e *env) {
		lim = oneAMinute(e.clk.Now, time.Minute)
		e.gate = newGate(lim, e.cfg.QueueMaxWait, e.clk.Now)
	})
	e.command(analyst, "/isolate", "web-01.contoso.local full first")
	e.command(analyst, "/isolate", "web-02.contoso.local full second")
	e.click(e.svc, "r-1", boss, true)
	waitFor(t, "r-1 done", func() bool { return e.get("r-1").MachineActionID != "" })
	e.click(e.svc, "r-2", boss, true)
	waitFor(t, "r-2 queued", func() bool { return !e.get("r-2").RunAt.IsZero() })
	e.svc.Stop()
	e.svc.Wait()
	r2 := e.get("r-2")
	if r2.State != store.Executing || !r2.CheckAt.Equal(r2.RunAt.Add(e.svc.leases.callLease())) {
		t.Fatalf("request %+v", r2)
	}
	if n, _ := lim.QueueDepth(context.Background(), defender.BudgetIsolate); n != 0 {
		t.Fatalf("%d slots still reserved", n)
	}
	if len(simActions(t, e.sim, defender.SimWeb02)) != 0 || r2.Note == noteStoreDown {
		t.Fatalf("sent, or handed back as a store outage: %+v", r2)
	}
	// Another replica resumes it once its CheckAt has passed.
	next := e.newService()
	e.clk.Advance(2 * time.Minute)
	if err := next.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "r-2 done", func() bool { return e.get("r-2").MachineActionID != "" })
	e.clk.Advance(time.Minute)
	next.Wait()
	if len(simActions(t, e.sim, defender.SimWeb02)) != 1 {
		t.Fatal("not exactly one action after the resume")
	}
}
