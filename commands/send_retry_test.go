package commands

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/testclock"
	"github.com/soc/isolate-bot/store"
)

// errUnreachable is what the MDE client returns when nothing reached MDE
// (DNS, connection, TLS).
var errUnreachable = &defender.APIError{Op: "isolate machine 23f2a6f58cae…", Kind: defender.ErrUnavailable, Message: "no response from MDE"}

// calls counts id's audited MDE calls that failed for reason.
func (e *env) calls(id, reason string) int {
	n := 0
	for _, ev := range e.events(id) {
		if ev.Type == store.EventMDECall && ev.Reason == reason {
			n++
		}
	}
	return n
}

// repliesWith counts the thread replies containing sub.
func (e *env) repliesWith(sub string) int {
	n := 0
	for _, s := range e.rec.replyTexts() {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// TestUnreachableBacksOff: a write that reached nobody does not end the
// approved request: it stays executing and held, records its next try
// (RunAt) and the count of failed tries, tells the thread once, and is sent
// again on the back-off schedule until MDE takes it.
func TestUnreachableBacksOff(t *testing.T) {
	e := newEnv(t)
	e.setOnPost(func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
		if n <= 2 {
			return defender.MachineAction{}, errUnreachable
		}
		return real()
	})
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	next := testclock.Start
	for try, wait := range e.cfg.ResendBackoff[:2] {
		waitFor(t, "a failed try to be audited", func() bool { return e.calls(r.ID, "unavailable") == try+1 })
		next = next.Add(wait)
		got := e.get(r.ID)
		if got.State != store.Executing || !got.RunAt.Equal(next) || !got.CheckAt.Equal(next.Add(e.svc.leases.callLease())) ||
			unreachableTries(got.Note) != try+1 {
			t.Fatalf("after try %d: %+v; want executing, held until %v, %d failed tries on record", try+1, got, next, try+1)
		}
		e.clk.Set(next)
	}
	got := e.finish(r.ID)
	if got.State != store.Done || e.posts.Load() != 3 || len(simActions(t, e.sim, defender.SimWeb01)) != 1 {
		t.Fatalf("state %s after %d POSTs; want done after 3", got.State, e.posts.Load())
	}
	if n := e.repliesWith("Trying again at"); n != 1 {
		t.Fatalf("%d back-off notes in the thread %q; want one", n, e.rec.replyTexts())
	}
}

// TestUnreachableGivesUp: after the last try of the back-off the request
// fails, saying why, having been sent 1 + len(e.cfg.ResendBackoff) times.
func TestUnreachableGivesUp(t *testing.T) {
	e := newEnv(t)
	e.setOnPost(func(int, func() (defender.MachineAction, error)) (defender.MachineAction, error) {
		return defender.MachineAction{}, errUnreachable
	})
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	e.drive("the request to end", 30*time.Second, func() bool { return e.get(r.ID).State.Terminal() })
	e.svc.Wait()
	want := 1 + len(e.cfg.ResendBackoff)
	got := e.get(r.ID)
	if got.State != store.Failed || int(e.posts.Load()) != want || e.calls(r.ID, "unavailable") != want {
		t.Fatalf("state %s after %d POSTs (%d audited); want failed after %d", got.State, e.posts.Load(), e.calls(r.ID, "unavailable"), want)
	}
	if ev, ok := e.event(r.ID, store.EventFailed); !ok || !strings.Contains(ev.Reason, "could not be reached") {
		t.Fatalf("failed event %+v (found %v)", ev, ok)
	}
	if n := e.repliesWith("Trying again at"); n != 1 {
		t.Fatalf("%d back-off notes in the thread %q; want one", n, e.rec.replyTexts())
	}
}

// TestUnreachableScheduleSurvivesRestart: the replica backing off stops;
// another takes the request over once its lease (the next try + callLease)
// has passed and carries on the same count: 1 + len(e.cfg.ResendBackoff) POSTs in
// all, and the thread is not told again.
func TestUnreachableScheduleSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.setOnPost(func(int, func() (defender.MachineAction, error)) (defender.MachineAction, error) {
		return defender.MachineAction{}, errUnreachable
	})
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the first try to fail", func() bool { return e.calls(r.ID, "unavailable") == 1 })
	e.svc.Stop()
	e.svc.Wait()
	if got := e.get(r.ID); got.State != store.Executing || unreachableTries(got.Note) != 1 {
		t.Fatalf("after the stop: %+v", got)
	}
	next := e.newService()
	ctx := context.Background()
	e.drive("the request to end", 30*time.Second, func() bool {
		if err := next.Tick(ctx); err != nil {
			t.Logf("tick: %v", err)
		}
		return e.get(r.ID).State.Terminal()
	})
	next.Wait()
	if got, want := int(e.posts.Load()), 1+len(e.cfg.ResendBackoff); got != want || e.get(r.ID).State != store.Failed {
		t.Fatalf("%d POSTs, state %s; want failed after %d", got, e.get(r.ID).State, want)
	}
	if n := e.repliesWith("Trying again at"); n != 1 {
		t.Fatalf("%d back-off notes in the thread %q; want one", n, e.rec.replyTexts())
	}
}

// TestReconcileWaitsForLateListing: MDE acted on a POST whose answer was
// lost, but lists the new action only 20 s later. Reconciling looks again
// at 5, 15 and 30 s, finds it at 30 s, and never sends a second POST.
func TestReconcileWaitsForLateListing(t *testing.T) {
	e := newEnv(t)
	var reads atomic.Int32
	e.def.MachineActionsFn = func(ctx context.Context, id string) ([]defender.MachineAction, error) {
		reads.Add(1)
		acts, err := e.sim.MachineActions(ctx, id)
		var listed []defender.MachineAction
		for _, a := range acts {
			if e.clk.Now().Sub(a.CreationDateTimeUTC) >= 20*time.Second {
				listed = append(listed, a)
			}
		}
		return listed, err
	}
	e.setOnPost(func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
		_, _ = real()
		return defender.MachineAction{}, &defender.APIError{Op: "isolate", Kind: defender.ErrOutcomeUnknown}
	})
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the unknown outcome to be audited", func() bool { return e.calls(r.ID, "outcome unknown") == 1 })
	base := reads.Load()
	for i, step := range []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second} {
		e.clk.Advance(step)
		waitFor(t, "a look at MDE's actions", func() bool { return reads.Load() == base+int32(i)+1 })
	}
	waitFor(t, "the found action to be recorded", func() bool { return e.get(r.ID).MachineActionID != "" })
	got := e.finish(r.ID)
	acts := simActions(t, e.sim, defender.SimWeb01)
	if e.posts.Load() != 1 || len(acts) != 1 || got.MachineActionID != acts[0].ID || got.State != store.Done {
		t.Fatalf("%d POSTs, request %+v, MDE actions %+v; want one POST and the request following it", e.posts.Load(), got, acts)
	}
	if e.rec.replyActions(acts[0].ID) == 0 {
		t.Fatalf("thread %q does not name the found action", e.rec.replyTexts())
	}
}

// TestReconcileIgnoresQuotedMarker: an action whose comment merely quotes
// "[isolate-bot r-1]" is not r-1's: reconciling finds nothing, sends once
// more and follows its own action.
func TestReconcileIgnoresQuotedMarker(t *testing.T) {
	e := newEnv(t)
	var quoted defender.MachineAction
	e.setOnPost(func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
		if n > 1 {
			return real()
		}
		var err error
		quoted, err = e.sim.Isolate(context.Background(), nil, defender.SimWeb01, defender.Full, "escalated from [isolate-bot r-1] in the portal")
		if err != nil {
			t.Error(err)
		}
		return defender.MachineAction{}, &defender.APIError{Op: "isolate", Kind: defender.ErrOutcomeUnknown}
	})
	r := e.request()
	if r.ID != "r-1" {
		t.Fatalf("request %s, want r-1", r.ID)
	}
	e.click(e.svc, r.ID, boss, true)
	e.drive("r-1 sent or ended", 5*time.Second, func() bool { r := e.get(r.ID); return r.MachineActionID != "" || r.State.Terminal() })
	got := e.finish(r.ID)
	if e.posts.Load() != 2 || got.MachineActionID == "" || got.MachineActionID == quoted.ID {
		t.Fatalf("%d POSTs, request follows %q (the quoting action is %q); want 2 POSTs and its own action", e.posts.Load(), got.MachineActionID, quoted.ID)
	}
}

// TestStopLetsCallFinish: Stop 300 ms into an isolate call that MDE
// answers after 2 s does not cut the call: its action id is recorded on the
// request and posted in the thread, and Wait returns soon after the answer.
func TestStopLetsCallFinish(t *testing.T) {
	const answerAfter = 2 * time.Second
	e := newEnv(t)
	e.def.IsolateFn = func(ctx context.Context, slot defender.Slot, id string, typ defender.IsolationType, c string) (defender.MachineAction, error) {
		// MDE acts at once and answers late; a cancelled call loses the
		// answer, as net/http would.
		e.posts.Add(1)
		a, err := e.sim.Isolate(ctx, slot, id, typ, c)
		select {
		case <-time.After(answerAfter):
			return a, err
		case <-ctx.Done():
			return defender.MachineAction{}, &defender.APIError{Op: "isolate", Kind: defender.ErrOutcomeUnknown}
		}
	}
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the POST to be in flight", func() bool { return e.posts.Load() == 1 })
	time.Sleep(300 * time.Millisecond) // the scenario: stop 300 ms into the call
	start := time.Now()
	e.svc.Stop()
	e.svc.Wait()
	took := time.Since(start)
	t.Logf("Stop+Wait took %s", took)
	acts := simActions(t, e.sim, defender.SimWeb01)
	got := e.get(r.ID)
	if len(acts) != 1 || got.MachineActionID != acts[0].ID || got.State != store.Executing {
		t.Fatalf("request %+v, MDE actions %+v; want the action recorded and the request left executing for another replica", got, acts)
	}
	if e.rec.replyActions(acts[0].ID) == 0 || !e.rec.hasReply("Sent to MDE") {
		t.Fatalf("thread %q lacks the action id", e.rec.replyTexts())
	}
	if took > 10*time.Second {
		t.Fatalf("Stop+Wait took %s, want within 10 s", took)
	}
}
