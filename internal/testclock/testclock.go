// Package testclock is the one settable clock of the tests: the simulator,
// the store and the Service all read it, so a test moves time for all of
// them at once instead of sleeping.
package testclock

import (
	"sync"
	"time"
)

// Start is where every test clock begins unless told otherwise: a fixed
// UTC morning, so formatted times in assertions are stable.
var Start = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

// Clock is safe for concurrent use. The zero value reads as the zero time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock reading t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock; pass the method value where a func() time.Time is
// wanted.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (backward for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
