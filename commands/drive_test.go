package commands

import (
	"time"
)

// drive moves the env's clock forward by step until cond holds, giving the
// background work a moment of real time between steps, for waits that are
// long on the Service's clock (back-offs, reconciling). It fails the test
// after 10 s of real time.
func (e *env) drive(what string, step time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out driving the clock until %s", what)
		}
		e.clk.Advance(step)
		time.Sleep(5 * time.Millisecond)
	}
}
