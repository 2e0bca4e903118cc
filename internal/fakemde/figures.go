package fakemde

import (
	"math"
	"strings"
	"time"
)

// Figures are what a run cost MDE, as the fake saw it: outbreak mode's
// performance figures (issue 11).
type Figures struct {
	Isolates       int            // isolate calls answered 2xx
	PerMachine     map[string]int // isolate calls answered 2xx, by machine id
	MostPerMachine int
	Throttled      int // 429 answers of every API
	Calls          int // calls of every API, the token's excepted
	// Span is from the first to the last isolate call answered 2xx; Ideal
	// the same for the fastest schedule l allows; Efficiency Ideal / Span.
	Span, Ideal time.Duration
	Efficiency  float64
}

// apiOps are the operations that count against MDE's API budgets.
var apiOps = []string{OpIsolate, OpUnisolate, OpMachine, OpMachines, OpAction, OpActions, OpCancel}

// Figures reads the run's figures so far, against MDE's limit l.
func (s *Server) Figures(l Limit) Figures {
	f := Figures{PerMachine: map[string]int{}}
	var first, last time.Time
	for _, r := range s.Requests(OpIsolate) {
		if r.Status < 200 || r.Status >= 300 {
			continue
		}
		f.Isolates++
		id := strings.Split(strings.TrimPrefix(r.Path, "/api/machines/"), "/")[0]
		f.PerMachine[id]++
		f.MostPerMachine = max(f.MostPerMachine, f.PerMachine[id])
		if first.IsZero() || r.At.Before(first) {
			first = r.At
		}
		if r.At.After(last) {
			last = r.At
		}
	}
	for _, op := range apiOps {
		f.Calls += s.Count(op)
		f.Throttled += s.Throttled(op)
	}
	f.Span, f.Ideal = last.Sub(first), l.IdealSpan(f.Isolates)
	f.Efficiency = f.Ideal.Seconds() / math.Max(f.Span.Seconds(), 1e-9)
	return f
}
