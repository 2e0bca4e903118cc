package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/mock"
	"github.com/soc/isolate-bot/store"
)

// refusals counts the "refused" events of the global audit stream by user,
// and how many of them are the throttle's "slow down".
func (e *env) refusals(user string) (all, throttled int) {
	e.t.Helper()
	evs, err := e.mem.AuditTail(context.Background(), 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == store.EventRefused && ev.Actor == user {
			all++
			if strings.HasPrefix(ev.Reason, throttledPrefix) {
				throttled++
			}
		}
	}
	return all, throttled
}

func (e *env) ephemeralsTo(user string) int {
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	n := 0
	for _, m := range e.rec.ephemerals {
		if m.User == user {
			n++
		}
	}
	return n
}

// TestRefusalsThrottled: after e.cfg.RefusalBurst refusals in a window, one
// "slow down" reply (audited once), then silence and no work (no Slack
// look-up) until the window ends; other users are not affected.
func TestRefusalsThrottled(t *testing.T) {
	e := newEnv(t, func(e *env) { e.thr = e.mem })
	for range 3 * e.cfg.RefusalBurst {
		e.command(stranger, "/isolate", "web-01 full x") // not allowed
	}
	if n := e.ephemeralsTo(stranger); n != e.cfg.RefusalBurst+1 {
		t.Fatalf("%d replies to %d refused commands; want %d and one slow down", n, 3*e.cfg.RefusalBurst, e.cfg.RefusalBurst)
	}
	if m := e.rec.lastEphemeral(t, stranger); text(m) != text(e.svc.slowDownMessage()) {
		t.Fatalf("last reply %q; want the slow down", text(m))
	}
	if all, thr := e.refusals(stranger); all != e.cfg.RefusalBurst+1 || thr != 1 {
		t.Fatalf("%d refused events (%d throttled); want %d, 1 throttled", all, thr, e.cfg.RefusalBurst+1)
	}
	if n := e.dirCalls.Load(); n != 1 {
		t.Fatalf("Slack asked %d times for the groups; want once (cache, then no work while silenced)", n)
	}
	e.command(analyst, "/isolate", "web-01 sideways x")
	if all, _ := e.refusals(analyst); all != 1 || e.ephemeralsTo(analyst) != 1 {
		t.Fatal("another user's refusal was throttled")
	}
	e.clk.Advance(e.cfg.RefusalWindow)
	e.command(stranger, "/isolate", "web-01 full x")
	if all, thr := e.refusals(stranger); all != e.cfg.RefusalBurst+2 || thr != 1 || e.ephemeralsTo(stranger) != e.cfg.RefusalBurst+2 {
		t.Fatalf("after the window: %d refused events, %d replies; want one more of each", all, e.ephemeralsTo(stranger))
	}
}

// TestRefusalThrottleStoreDown: a refusal is already a "no": when the
// store cannot count, every refusal is told as without the throttle.
func TestRefusalThrottleStoreDown(t *testing.T) {
	e := newEnv(t, func(e *env) {
		e.thr = &mock.Throttle{
			HitFn:  func(context.Context, string, time.Duration) (int64, error) { return 0, store.ErrUnavailable },
			HitsFn: func(context.Context, string) (int64, error) { return 0, store.ErrUnavailable },
		}
	})
	for range 2 * e.cfg.RefusalBurst {
		e.command(stranger, "/isolate", "web-01 full x")
	}
	if n := e.ephemeralsTo(stranger); n != 2*e.cfg.RefusalBurst {
		t.Fatalf("%d replies; want one per refusal", n)
	}
	if _, thr := e.refusals(stranger); thr != 0 {
		t.Fatal("throttled without a count")
	}
}

// TestClickRefusalsThrottled: refused clicks count too, and a click on an
// unknown request id leaves no stream for that id.
func TestClickRefusalsThrottled(t *testing.T) {
	e := newEnv(t, func(e *env) { e.thr = e.mem })
	for range 2 * e.cfg.RefusalBurst {
		e.click(e.svc, "r-404", stranger, true)
	}
	if n := e.ephemeralsTo(stranger); n != e.cfg.RefusalBurst+1 {
		t.Fatalf("%d replies to %d refused clicks; want %d", n, 2*e.cfg.RefusalBurst, e.cfg.RefusalBurst+1)
	}
	if h := e.events("r-404"); len(h) != 0 {
		t.Fatalf("an unknown request id has an audit stream: %+v", h)
	}
	evs, err := e.mem.AuditTail(context.Background(), 100)
	if err != nil || len(evs) != e.cfg.RefusalBurst+1 || evs[0].Type != store.EventClickRefused || !strings.Contains(evs[0].Reason, "unknown request r-404") {
		t.Fatalf("global audit %+v, %v", evs, err)
	}
}
