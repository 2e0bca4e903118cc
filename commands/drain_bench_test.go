package commands

import (
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/fakemde"
)

// BenchmarkDrain measures issue 11's figures: two replicas drain 300
// machines through the real MDE client against the fake MDE, which
// enforces MDE's two windows scaled down (20 calls per 2 s, 150 per 20 s:
// the same 15:1 ratio of hour to minute budget as 1,500 : 100; the limiter
// adds a 50 ms margin to each window, production adds 1 s and 5 s). The
// "kill" case kills one replica at 40 % right after a call reached MDE.
//
//	go test -run '^$' -bench BenchmarkDrain -benchtime 1x ./commands/
//
// Metrics: efficiency (ideal span of the calls under MDE's windows / the
// achieved span), 429s, MDE calls per machine (the isolate call plus the
// reconciling reads; the look-ups are the request stage's, batched),
// isolate calls per machine (max over machines), Redis commands per
// machine (server side, scripts' inner commands included: batch store,
// limiter, audit) and Redis round trips per machine, in all and by part.
func BenchmarkDrain(b *testing.B) {
	for _, c := range []struct {
		name   string
		killAt int
	}{{"two-replicas", 0}, {"kill-one-at-40pct", 120}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				benchDrain(b, c.killAt)
			}
		})
	}
}

func benchDrain(b *testing.B, killAt int) {
	const n = 300
	rig := newDrainRig(b, rigOptions{machines: n, replicas: 2, killAt: killAt, margin: 50 * time.Millisecond,
		limit: fakemde.Limit{Short: fakemde.Window{Calls: 20, Length: 2 * time.Second}, Long: fakemde.Window{Calls: 150, Length: 20 * time.Second}}})
	batch := rig.start()
	done := rig.wait(batch.ID, n, 3*time.Minute)
	f := rig.figures()
	most := 0
	for _, m := range rig.machines {
		most = max(most, f.PerMachine[m])
	}
	if done.Counts.Sent != n || f.Isolates != n || most != 1 {
		b.Errorf("sent %d, %d isolate calls, at most %d per machine; want %d, %d, 1", done.Counts.Sent, f.Isolates, most, n, n)
	}
	b.ReportMetric(f.Efficiency, "efficiency")
	b.ReportMetric(float64(f.Throttled), "429s")
	b.ReportMetric(float64(f.Calls)/n, "mde_calls/machine")
	b.ReportMetric(float64(most), "max_isolates/machine")
	b.ReportMetric(float64(f.redisCommands)/n, "redis_cmds/machine")
	b.ReportMetric(float64(f.limiterRounds+f.batchRounds+f.auditRounds)/n, "redis_roundtrips/machine")
	b.ReportMetric(float64(f.limiterRounds)/n, "limiter_roundtrips/machine")
	b.ReportMetric(float64(f.batchRounds)/n, "batch_roundtrips/machine")
	b.ReportMetric(float64(f.auditRounds)/n, "audit_roundtrips/machine")
	b.ReportMetric(f.Span.Seconds(), "span_s")
	b.ReportMetric(f.Ideal.Seconds(), "ideal_s")
}
