package commands

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// TestDrainUnknownOutcome: a batch call whose outcome is unknown (MDE took
// the POST, no answer) is held until MDE must list the action, then
// reconciled by its marker; only when no action carries it is the call
// sent again, and a second unknown outcome fails the entry.
func TestDrainUnknownOutcome(t *testing.T) {
	unknown := &defender.APIError{Op: "isolate", Kind: defender.ErrOutcomeUnknown}
	for _, c := range []struct {
		name      string
		hook      postHook
		posts     int32
		want      store.EntryState
		simAction bool
	}{
		{"MDE acted: found by marker, not resent", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			_, _ = real()
			return defender.MachineAction{}, unknown
		}, 1, store.EntrySent, true},
		{"MDE did not act: sent once more", func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			if n == 1 {
				return defender.MachineAction{}, unknown
			}
			return real()
		}, 2, store.EntrySent, true},
		{"unknown twice: failed, no third call", func(int, func() (defender.MachineAction, error)) (defender.MachineAction, error) {
			return defender.MachineAction{}, unknown
		}, 2, store.EntryFailed, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setOnPost(c.hook)
			d, b := drainOneMachine(t, e)
			entry := func() store.BatchEntry {
				es, err := d.Entries(context.Background(), b.ID)
				if err != nil || len(es) != 1 {
					t.Fatalf("Entries = %v, %v", es, err)
				}
				return es[0]
			}
			calledAt := e.clk.Now()
			waitFor(t, "the entry held for reconciling", func() bool {
				return e.posts.Load() == 1 && entry().LeaseUntil.Equal(calledAt.Add(e.cfg.ReconcileChecks[len(e.cfg.ReconcileChecks)-1]))
			})
			e.clk.Advance(e.cfg.ReconcileChecks[len(e.cfg.ReconcileChecks)-1])
			waitFor(t, "the entry final", func() bool { return entry().State.Final() })
			got := entry()
			if got.State != c.want || e.posts.Load() != c.posts {
				t.Errorf("entry %+v after %d posts; want %s after %d", got, e.posts.Load(), c.want, c.posts)
			}
			if acts := simActions(t, e.sim, defender.SimWeb01); (len(acts) == 1) != c.simAction || (c.simAction && acts[0].ID != got.ActionID) {
				t.Errorf("MDE has %d actions %+v; entry action %q", len(acts), acts, got.ActionID)
			}
			if p, _ := d.Progress(context.Background(), b.ID); !p.Finished() {
				t.Errorf("batch not finished: %+v", p)
			}
		})
	}
}

// TestDrainNothingSentRequeued: a call MDE refused without acting (429,
// nothing reached it) puts the entry back in the queue, not reconciled and
// not failed; the next claim sends it. A permanent refusal fails it.
func TestDrainNothingSentRequeued(t *testing.T) {
	for _, c := range []struct {
		name  string
		err   error
		posts int32
		want  store.EntryState
	}{
		{"429", &defender.APIError{Op: "isolate", Status: 429, Kind: defender.ErrThrottled, RetryAfter: time.Millisecond}, 2, store.EntrySent},
		{"403", &defender.APIError{Op: "isolate", Status: 403, Kind: defender.ErrForbidden}, 1, store.EntryFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setOnPost(func(n int, real func() (defender.MachineAction, error)) (defender.MachineAction, error) {
				if n == 1 {
					return defender.MachineAction{}, c.err
				}
				return real()
			})
			d, b := drainOneMachine(t, e)
			var got store.BatchEntry
			waitFor(t, "the entry final", func() bool {
				es, err := d.Entries(context.Background(), b.ID)
				if err != nil || len(es) != 1 {
					return false
				}
				got = es[0]
				return got.State.Final()
			})
			if got.State != c.want || e.posts.Load() != c.posts || got.Reclaimed {
				t.Errorf("entry %+v after %d posts; want %s after %d", got, e.posts.Load(), c.want, c.posts)
			}
		})
	}
}

// drainOneMachine starts a drain loop on e's Service, in memory, with a
// batch of one machine (web-01).
func drainOneMachine(t *testing.T, e *env) (*Drainer, store.Batch) {
	t.Helper()
	lim := ratelimit.NewMemory(limiterConfig(ratelimit.Limits{}, e.clk.Now))
	d := NewDrainer(e.svc, DrainDeps{Batches: store.NewMemoryBatches(store.BatchesConfig{Prefix: "t", Retention: time.Hour, Now: e.clk.Now}),
		Gate: ratelimit.NewGate(lim, 0, e.clk.Now, zerolog.Nop())})
	b, err := d.StartBatch(context.Background(), store.Batch{Command: store.Isolate, IsolationType: "Full", Comment: "outbreak",
		Requester: analyst, Approvers: []string{boss}}, []store.BatchEntry{{MachineID: defender.SimWeb01}})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	return d, b
}
