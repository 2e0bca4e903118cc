package commands

import (
	"context"
	"errors"
	"time"
)

// Shutdown separates waiting from calling: Stop ends the waits of
// background work, while its MDE calls and the writes that record their
// outcome run on a context only Abort cancels. A wait cut by Stop leaves
// the request as its lease recorded it (RunAt, CheckAt), so another replica
// resumes it on time, reconciling with MDE first.

// errStopped: a wait ended because the Service is stopping; nothing was
// sent.
var errStopped = errors.New("stopping: wait ended, nothing sent")

// stopping reports whether Stop was called.
func (s *Service) stopping() bool { return s.stopped.Err() != nil }

// untilStop is ctx, also cancelled by Stop.
func (s *Service) untilStop(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.stopped, cancel)
	return wctx, func() { unhook(); cancel() }
}

// waitUntil waits until at on the Service's clock; false if Stop or ctx
// ended the wait first. It reads the clock again at least every
// SchedulerEvery, so a clock that jumps (a test clock, an NTP step) ends
// the wait on time.
func (s *Service) waitUntil(ctx context.Context, at time.Time) bool {
	for {
		d := at.Sub(s.now())
		if d <= 0 {
			return ctx.Err() == nil && !s.stopping()
		}
		t := time.NewTimer(min(d, s.cfg.SchedulerEvery))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-s.stopped.Done():
			t.Stop()
			return false
		}
	}
}
