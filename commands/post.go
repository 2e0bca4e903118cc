package commands

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// post makes one Isolate/Unisolate call. The call's deadline is CallTimeout
// after it is admitted: while it is queued behind the rate limit, the queue
// notice pushes the deadline out and records RunAt/CheckAt.
func (s *Service) post(ctx context.Context, r *store.Request) (defender.MachineAction, error) {
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.AfterFunc(s.cfg.CallTimeout, cancel)
	defer deadline.Stop()
	var mu sync.Mutex // the Gate may call the notice from the client's goroutine
	notice := func(at time.Time) error {
		mu.Lock()
		defer mu.Unlock()
		deadline.Reset(at.Sub(s.now()) + s.cfg.CallTimeout)
		nr, err := s.d.Approvals.Transition(ctx, r.ID, store.Executing, store.Change{To: store.Executing, IfVersion: r.Version, RunAt: at, CheckAt: at.Add(s.lease())})
		if err != nil {
			return fmt.Errorf("record queue slot of %s: %w", r.ID, err)
		}
		*r = nr
		s.reply(ctx, nr, msg(txtf("Queued behind the MDE rate limit; expected to run at %s.", hhmmss(at))))
		s.audit(ctx, store.Event{RequestID: nr.ID, Type: store.EventQueued, Actor: systemActor, MachineID: nr.MachineID, Reason: "runs at " + at.UTC().Format(time.RFC3339)})
		return nil
	}
	callCtx = withQueueNotice(callCtx, notice)
	mu.Lock()
	req := *r
	mu.Unlock()
	comment := MDEComment(req)
	var (
		a   defender.MachineAction
		err error
	)
	if req.Command == store.Unisolate {
		a, err = s.d.Defender.Unisolate(callCtx, req.MachineID, comment)
	} else {
		a, err = s.d.Defender.Isolate(callCtx, req.MachineID, defender.IsolationType(req.IsolationType), comment)
	}
	mu.Lock()
	defer mu.Unlock()
	return a, err
}
