package fakemde

import (
	"math"
	"sort"
	"time"

	"github.com/soc/isolate-bot/defender"
)

// Window is one of MDE's limits on an API: at most Calls calls in any
// trailing Length (MDE: 100 a minute, and 1,500 an hour).
type Window struct {
	Calls  int
	Length time.Duration
}

// Limit is one API's two windows. A Window with Calls <= 0 is not
// enforced.
type Limit struct {
	Short, Long Window
}

// Limits configures EnforceLimits.
type Limits struct {
	// Budgets holds each API's limit by its defender.Budget* name
	// (isolate, unisolate, machineactions, machines, cancel); an API not
	// listed is not limited.
	Budgets map[string]Limit
	// RetryAfter: a 429 carries Retry-After, the whole seconds (rounded
	// up) until the call would have passed; otherwise it has none.
	RetryAfter bool
}

// MDELimits is MDE's documented limit, the same for every API.
func MDELimits() Limits {
	l := Limit{Short: Window{100, time.Minute}, Long: Window{1500, time.Hour}}
	return Limits{RetryAfter: true, Budgets: map[string]Limit{
		defender.BudgetIsolate: l, defender.BudgetUnisolate: l, defender.BudgetMachineActions: l,
		defender.BudgetMachines: l, defender.BudgetCancel: l,
	}}
}

// budgetOf is the API (rate-limit budget) an operation counts against.
var budgetOf = map[string]string{
	OpIsolate:   defender.BudgetIsolate,
	OpUnisolate: defender.BudgetUnisolate,
	OpAction:    defender.BudgetMachineActions,
	OpActions:   defender.BudgetMachineActions,
	OpMachine:   defender.BudgetMachines,
	OpMachines:  defender.BudgetMachines,
	OpCancel:    defender.BudgetCancel,
}

// EnforceLimits makes the fake answer 429 to any call beyond its API's
// windows, exactly: a call at t passes when fewer than Calls calls passed
// in (t-Length, t] for each window. Refused calls do not count. The
// clock is the one given to New. A zero Limits ends enforcement.
func (s *Server) EnforceLimits(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l
	s.passed = map[string][]time.Time{}
}

// Throttled is the number of 429s answered to op, by the limits or by an
// injected Fault.
func (s *Server) Throttled(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled[op]
}

// admitLocked applies the limits to a call of op at now: ok, or the wait
// until it would pass.
func (s *Server) admitLocked(op string, now time.Time) (ok bool, wait time.Duration) {
	budget, limited := budgetOf[op]
	lim, has := s.limits.Budgets[budget]
	if !limited || !has {
		return true, 0
	}
	log := s.passed[budget]
	for _, w := range []Window{lim.Short, lim.Long} {
		if w.Calls <= 0 {
			continue
		}
		// Calls that passed in (now-Length, now].
		i := sort.Search(len(log), func(i int) bool { return log[i].After(now.Add(-w.Length)) })
		if len(log)-i >= w.Calls {
			wait = max(wait, log[len(log)-w.Calls].Add(w.Length).Sub(now))
		}
	}
	if wait > 0 {
		return false, wait
	}
	// Keep only what the longest window still needs.
	keep := max(lim.Short.Length, lim.Long.Length)
	i := sort.Search(len(log), func(i int) bool { return log[i].After(now.Add(-keep)) })
	s.passed[budget] = append(log[i:], now)
	return true, 0
}

// retryAfterSecs rounds a wait up to whole seconds, at least 1.
func retryAfterSecs(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// IdealSpan is the time from the first to the n-th call of the fastest
// schedule l allows: each call as early as both windows let it (greedy is
// optimal for sliding windows). Efficiency is IdealSpan over the span a
// run achieved.
func (l Limit) IdealSpan(n int) time.Duration {
	if n == 0 {
		return 0
	}
	at := make([]time.Duration, n)
	for k := range at {
		for _, w := range []Window{l.Short, l.Long} {
			if w.Calls > 0 && k >= w.Calls {
				at[k] = max(at[k], at[k-w.Calls]+w.Length)
			}
		}
	}
	return at[n-1]
}
