package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
)

// BenchmarkOutbreak measures issue 11's figures over a whole outbreak run:
// two replicas (internal/app, real slack-go against the fake Slack, the
// real MDE client against the fake MDE over HTTP, one real redis-server)
// isolate 300 machines named in one /isolate, approved by two managers,
// and follow every action to its end. The fake MDE enforces MDE's two
// windows scaled down 30 times (20 calls per 2 s, 150 per 20 s: the 15:1
// ratio of 1,500 an hour to 100 a minute) on every API, and answers 429
// beyond them; the bot's windows, polling and progress are scaled alike.
// "kill" stops one replica dead (every context cancelled, as a crash)
// once 40 % of the isolations reached MDE.
//
//	go test -run '^$' -bench BenchmarkOutbreak -benchtime 1x ./internal/app/
//
// Metrics: efficiency (ideal span of the isolate calls under MDE's
// windows / the achieved span), 429s of every API, MDE calls per machine
// (every API: isolations, look-ups, status reads, reconciling), and split
// into look-ups and status reads, isolate calls per machine (max), Redis
// commands per machine (server side, scripts' inner commands included).
//
// On a 2-core machine (2026-12-01, three runs): efficiency 0.985 to
// 0.988, 0 429s, 1.087 MDE calls per machine (1.093 with the kill),
// look-ups 0.07 per machine, 5 (7) status reads in all, exactly one
// isolate per machine, 42 to 46 Redis commands per machine.
func BenchmarkOutbreak(b *testing.B) {
	for _, c := range []struct {
		name   string
		killAt int
	}{{"two-replicas", 0}, {"kill-one-at-40pct", 120}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				benchOutbreak(b, 300, c.killAt)
			}
		})
	}
}

// scaled is MDE's limit on every API, 30 times faster.
var scaled = fakemde.Limit{Short: fakemde.Window{Calls: 20, Length: 2 * time.Second}, Long: fakemde.Window{Calls: 150, Length: 20 * time.Second}}

// outbreakWorld is a world whose MDE enforces the scaled limits and ends
// actions after a scaled half minute, and whose bots run 30 times faster.
func outbreakWorld(b *testing.B) *world {
	w := newWorld(b)
	all := fakemde.Limits{Budgets: map[string]fakemde.Limit{}}
	for _, api := range []string{defender.BudgetIsolate, defender.BudgetUnisolate, defender.BudgetMachineActions, defender.BudgetMachines, defender.BudgetCancel} {
		all.Budgets[api] = scaled
	}
	w.mde.EnforceLimits(all)
	w.mde.Sim.PendingFor, w.mde.Sim.CompleteAfter = 300*time.Millisecond, time.Second
	w.fixed = func(f *config.Fixed) {
		const margin = 50 * time.Millisecond // production: 1 s and 5 s
		f.RateLimitMinute, f.RateLimitHour = scaled.Short.Length+margin, scaled.Long.Length+margin
		f.PollInterval, f.PollFastFor, f.PollMaxInterval = 333*time.Millisecond, 20*time.Second, 10*time.Second
		f.BulkProgressEvery, f.SchedulerEvery = 167*time.Millisecond, 167*time.Millisecond
		f.ReconcileChecks = []time.Duration{167 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}
	}
	return w
}

func benchOutbreak(b *testing.B, n, killAt int) {
	w := outbreakWorld(b)
	names := addMachines(b, w, n, "")
	env := map[string]string{"APPROVER_USER_IDS": "U0BOB,U0CAROL", "RATE_LIMIT_PER_MINUTE": "20", "RATE_LIMIT_PER_HOUR": "150",
		"MDE_CALL_TIMEOUT": "1s"} // 30 s scaled: a dead replica's claim comes back after 2 s
	first, _, cancel0, done0 := w.start(b, env)
	_, _, cancel1, done1 := w.start(b, env)
	defer func() {
		cancel0()
		cancel1()
		<-done0
		<-done1
	}()
	if err := w.fs.WaitConnections(2, wait); err != nil {
		b.Fatal(err)
	}

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", strings.Join(names, ", ")+" full ransomware spreading over SMB")
	card := waitCard(b, w)
	lookups := w.mde.Count(fakemde.OpMachines) + w.mde.Count(fakemde.OpActions)
	actionsBefore := w.mde.Count(fakemde.OpActions)
	w.fs.ClickButton("U0BOB", "C1", card.TS, bot.ActionApprove)
	waitThreadText(b, w, card.TS, "(1 of 2)")
	w.fs.ClickButton("U0CAROL", "C1", card.TS, bot.ActionApprove)
	if killAt > 0 {
		if err := w.mde.WaitCount(fakemde.OpIsolate, killAt, time.Minute); err != nil {
			b.Fatal(err)
		}
		first.Service().Abort()
	}
	if _, err := w.fs.WaitThread("C1", card.TS, func(ms []fakeslack.Message) bool { return anyText(ms, "Batch b-1 finished") }, 3*time.Minute); err != nil {
		b.Fatalf("no summary: %v\n%v", err, threadTexts(w, card.TS))
	}
	f := w.mde.Figures(scaled)
	reads := w.mde.Count(fakemde.OpActions) - actionsBefore
	redisCommands, err := redistest.CommandCalls(context.Background(), w.rs.Client())
	if err != nil {
		b.Fatal(err)
	}
	if f.Isolates != n || f.MostPerMachine != 1 || !anyText(w.fs.Thread("C1", card.TS), fmt.Sprintf("%d isolated · 0 failed", n)) {
		b.Errorf("%d isolate calls, at most %d per machine, summary %v; want %d, 1, all isolated", f.Isolates, f.MostPerMachine, threadTexts(w, card.TS), n)
	}
	b.ReportMetric(f.Efficiency, "efficiency")
	b.ReportMetric(float64(f.Throttled), "429s")
	b.ReportMetric(float64(f.Calls)/float64(n), "mde_calls/machine")
	b.ReportMetric(float64(lookups)/float64(n), "lookups/machine")
	b.ReportMetric(float64(reads), "status_reads")
	b.ReportMetric(float64(f.MostPerMachine), "max_isolates/machine")
	b.ReportMetric(float64(redisCommands)/float64(n), "redis_cmds/machine")
	b.ReportMetric(f.Span.Seconds(), "span_s")
	b.ReportMetric(f.Ideal.Seconds(), "ideal_s")
}
