package commands

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/soc/isolate-bot/store"
)

// Shutting down while an MDE action is followed leaves the request
// executing and in the deployment's followed set, and releases the poller
// lease so another replica follows at once; the thread hears nothing (the
// following is the deployment's, not this replica's).
func TestStopWhileFollowing(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the MDE action to be sent", func() bool { return e.get(r.ID).MachineActionID != "" })
	before := len(e.rec.replyTexts())
	e.svc.Stop() // the simulated clock stands still: the action stays Pending
	e.svc.Wait()
	if got := e.get(r.ID); got.State != store.Executing {
		t.Fatalf("request %s after the shutdown, want executing", got.State)
	}
	if ids, _ := e.mem.Followed(context.Background()); !slices.Equal(ids, []string{r.ID}) {
		t.Fatalf("followed %v after the shutdown, want [%s]", ids, r.ID)
	}
	if held, _ := e.mem.HoldLease(context.Background(), pollerLeaseName, "another replica", time.Minute); !held {
		t.Fatal("the stopped replica kept the poller lease")
	}
	if replies := e.rec.replyTexts(); len(replies) != before {
		t.Fatalf("thread %q after the shutdown; want no new reply", replies[before:])
	}
}

// A replica that stops while following an MDE action hands the following
// over: once its lease has run out, another replica's scheduler picks the
// request up by its recorded action id, reports where the action stands,
// and ends the request, without a second POST.
func TestFollowingSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.click(e.svc, r.ID, boss, true)
	waitFor(t, "the MDE action to be sent", func() bool { return e.get(r.ID).MachineActionID != "" })
	e.svc.Stop()
	e.svc.Wait()
	if got := e.get(r.ID); got.State != store.Executing {
		t.Fatalf("after the shutdown the request is %s, want executing (still followed)", got.State)
	}
	before := len(e.rec.replyTexts())

	next := e.newService()
	e.clk.Advance(time.Minute) // past the lease; the simulated action has succeeded
	if err := next.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request to end", func() bool { return e.get(r.ID).State.Terminal() })
	next.Wait()
	got := e.get(r.ID)
	if got.State != store.Done || e.posts.Load() != 1 {
		t.Fatalf("request %s after %d POSTs; want done after exactly 1", got.State, e.posts.Load())
	}
	// The resumed follower names the action it took over in the thread.
	e.rec.mu.Lock()
	resumed := slices.ContainsFunc(e.rec.replies[before:], func(s sent) bool { return slices.Contains(s.M.Spans, code(got.MachineActionID)) })
	e.rec.mu.Unlock()
	if !resumed {
		t.Errorf("thread %q", e.rec.replyTexts())
	}
	if h := e.history(r.ID); h[len(h)-1] != store.EventDone {
		t.Errorf("audit %v, want it to end with done", h)
	}
}
