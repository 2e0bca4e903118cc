package main

// Multi-replica, fault and load tests of the real binary (issue 5). Each
// test runs `bot` as separate OS processes (see procs_test.go) and plays
// Slack users against them; every test ends by grepping all process output
// for the credentials.

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/store"
)

var approverIDs = strings.Split(approvers, ",")

// TestReplicasApproveExactlyOnce: two replicas on one Redis share Slack's
// deliveries. Three approvers click Approve on each card at the same time,
// the clicks landing on both replicas: each request is decided once (one
// "Approved by" reply), MDE gets exactly one isolate POST per machine, and
// the other two approvers are told who approved first.
func TestReplicasApproveExactlyOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	a, b := h.start("replica-a"), h.start("replica-b")
	a.waitReady(t)
	b.waitReady(t)
	if err := h.fs.WaitConnections(2, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	ms := h.addMachines(4)
	requesters := []string{"U0ANA1", "U0ANA2", "U0ANA3", "U0ANA1"}
	for i, m := range ms {
		h.isolate(requesters[i], m)
	}
	cards := h.waitCards(ms, 20*time.Second)

	// Every approver sees every card with its buttons (the button is read
	// once: after the first decision the card has none, but a Slack client
	// still showing the old card can send the click).
	ids := map[string]string{} // host → request id
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for _, m := range ms {
		card := cards[m.ComputerDNSName]
		btn, ok := card.Button(bot.ActionApprove)
		if !ok {
			t.Fatalf("card for %s has no Approve button: %s", m.ComputerDNSName, card.AllText())
		}
		ids[m.ComputerDNSName] = btn.Value
		for _, u := range approverIDs {
			wg.Go(func() {
				<-gate
				h.fs.Click(u, chanSOC, card.TS, btn.ActionID, btn.BlockID, btn.Value)
			})
		}
	}
	close(gate) // all twelve clicks at once
	wg.Wait()

	if err := h.mde.WaitCount(fakemde.OpIsolate, len(ms), 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, h.allTails())
	}
	for _, m := range ms {
		card := cards[m.ComputerDNSName]
		id := ids[m.ComputerDNSName]
		th, err := h.fs.WaitThread(chanSOC, card.TS, func(r []fakeslack.Message) bool { return threadHas(r, "Sent to MDE") }, 20*time.Second)
		if err != nil {
			t.Fatalf("%s (%s): %v\n%s", m.ComputerDNSName, id, err, threadText(h.fs.Thread(chanSOC, card.TS)))
		}
		if n := countText(th, "Approved by"); n != 1 {
			t.Errorf("%s: %d \"Approved by\" replies, want 1:\n%s", id, n, threadText(th))
		}
		// The two approvers who lost are told who won, privately.
		want := "`" + id + "` was already approved by"
		winner := ""
		for _, u := range approverIDs {
			if threadHas(th, "Approved by <@"+u+">") {
				winner = u
			}
		}
		if winner == "" {
			t.Errorf("%s: no approver named in the thread:\n%s", id, threadText(th))
			continue
		}
		for _, u := range approverIDs {
			if u == winner {
				continue
			}
			_, err := h.fs.WaitEphemeral(u, func(es []fakeslack.Ephemeral) bool {
				for _, e := range es {
					if strings.Contains(e.AllText(), want) {
						return true
					}
				}
				return false
			}, 10*time.Second)
			if err != nil {
				t.Errorf("%s, who lost the race for %s, was not told: %v", u, id, err)
			}
		}
	}

	// The clicks really were spread over both replicas.
	conns := map[int]bool{}
	for _, e := range h.fs.Envelopes() {
		if e.Type == "interactive" {
			for _, d := range e.Deliveries {
				conns[d.ConnID] = true
			}
		}
	}
	if len(conns) < 2 {
		t.Errorf("clicks reached %d connection(s), want both replicas", len(conns))
	}

	a.stop(t, 20*time.Second)
	b.stop(t, 20*time.Second)
	// Counted after both processes are gone: nothing can send later.
	perMachine := map[string]int{}
	for _, r := range h.mde.Requests(fakemde.OpIsolate) {
		perMachine[r.Path]++
	}
	for _, m := range ms {
		if n := perMachine["/api/machines/"+m.ID+"/isolate"]; n != 1 {
			t.Errorf("%s: %d isolate POSTs, want exactly 1", m.ComputerDNSName, n)
		}
	}
	if n := h.mde.Count(fakemde.OpIsolate); n != len(ms) {
		t.Errorf("%d isolate POSTs in all, want %d", n, len(ms))
	}
	assertRequestFields(t, a, b)
}

// assertRequestFields: every log line about one request names the request
// and the machine, the MDE calls included, so one grep follows it across
// replicas.
func assertRequestFields(t *testing.T, procs ...*proc) {
	t.Helper()
	checked := 0
	for _, p := range procs {
		for _, e := range p.logEntries() {
			msg, _ := e["message"].(string)
			post := msg == "MDE request" && e["method"] == "POST"
			if !post && msg != "approved" && msg != "MDE action created" {
				continue
			}
			checked++
			for _, k := range []string{"request_id", "machine"} {
				if s, _ := e[k].(string); s == "" {
					t.Errorf("%s: log line %q lacks %s: %v", p.name, msg, k, e)
				}
			}
			if msg == "approved" && e["user"] == nil {
				t.Errorf("%s: approval log line lacks the user: %v", p.name, e)
			}
		}
	}
	if checked == 0 {
		t.Error("no request log lines to check")
	}
}

// queuedAt matches the thread notice of a request waiting for a rate-limit slot.
var queuedAt = regexp.MustCompile(`Queued behind the MDE rate limit; expected to run at (\d\d):(\d\d):(\d\d) UTC`)

// clockAfter turns an hh:mm:ss UTC wall time into the first such instant
// not more than 12 h before ref.
func clockAfter(ref time.Time, hh, mm, ss string) time.Time {
	var h, m, s int
	fmt.Sscanf(hh+" "+mm+" "+ss, "%d %d %d", &h, &m, &s)
	r := ref.UTC()
	t := time.Date(r.Year(), r.Month(), r.Day(), h, m, s, 0, time.UTC)
	if t.Before(r.Add(-12 * time.Hour)) {
		t = t.Add(24 * time.Hour)
	}
	return t
}

// TestReplicasShareTheLimit: with RATE_LIMIT_PER_MINUTE=2 on both replicas,
// four approvals spread over them send exactly two isolate POSTs; the other
// two requests wait in the shared queue, and their threads say when they
// will run (a minute after the first call, the limiter's 61 s window).
//
// The limit applies to every MDE API, and creating a request costs one
// machine lookup and one actions read, so four requests cannot be created
// under a limit of two per minute: a first replica with the default limit
// creates the cards, then two replicas with the low limit take over (a
// rolling configuration change). The isolate budget is untouched until then.
func TestReplicasShareTheLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	setup := h.start("setup")
	setup.waitReady(t)
	ms := h.addMachines(4)
	for i, m := range ms {
		h.isolate(strings.Split(analysts, ",")[i%3], m)
	}
	cards := h.waitCards(ms, 20*time.Second)
	setup.stop(t, 20*time.Second)

	limit := []string{"RATE_LIMIT_PER_MINUTE", "2", "RATE_LIMIT_PER_HOUR", "10"}
	a, b := h.start("replica-a", limit...), h.start("replica-b", limit...)
	a.waitReady(t)
	b.waitReady(t)
	if err := h.fs.WaitConnections(2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		h.fs.ClickButton(approverIDs[i%3], chanSOC, cards[m.ComputerDNSName].TS, bot.ActionApprove)
	}

	// Every thread ends up either sent or queued.
	sent, queued := 0, map[string]time.Time{}
	for _, m := range ms {
		ts := cards[m.ComputerDNSName].TS
		th, err := h.fs.WaitThread(chanSOC, ts, func(r []fakeslack.Message) bool {
			return threadHas(r, "Sent to MDE") || threadHas(r, "Queued behind the MDE rate limit")
		}, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: %v\n%s\n%s", m.ComputerDNSName, err, threadText(h.fs.Thread(chanSOC, ts)), h.allTails())
		}
		if threadHas(th, "Sent to MDE") {
			sent++
			continue
		}
		for _, r := range th {
			if g := queuedAt.FindStringSubmatch(r.AllText()); g != nil {
				queued[m.ComputerDNSName] = clockAfter(r.PostedAt, g[1], g[2], g[3])
			}
		}
	}
	posts := h.mde.Requests(fakemde.OpIsolate)
	if sent != 2 || len(queued) != 2 || len(posts) != 2 {
		t.Fatalf("sent %d, queued %d, isolate POSTs %d; want 2, 2, 2 (the limit is shared)\n%s", sent, len(queued), len(posts), h.allTails())
	}
	for host, at := range queued {
		t.Logf("%s queued until %s, %s after the first call", host, at.Format(time.TimeOnly), at.Sub(posts[0].At).Round(time.Second))
	}
	// The queued slots open one 61 s window after the admitted calls
	// (hh:mm:ss truncates, hence the second of slack).
	for host, at := range queued {
		if d := at.Sub(posts[0].At); d < 59*time.Second {
			t.Errorf("%s queued for %s, only %s after the first call; the window is 61 s", host, at.Format(time.TimeOnly), d.Round(time.Millisecond))
		}
		if d := at.Sub(posts[1].At); d > 62*time.Second {
			t.Errorf("%s queued for %s, %s after the second call; want within the 61 s window", host, at.Format(time.TimeOnly), d.Round(time.Millisecond))
		}
	}

	a.stop(t, 20*time.Second)
	b.stop(t, 20*time.Second)
	if n := h.mde.Count(fakemde.OpIsolate); n != 2 {
		t.Errorf("%d isolate POSTs after shutdown, want 2: queued calls must not be sent early", n)
	}
}

// waitEphemeral waits for an ephemeral to user containing sub.
func (h *harness) waitEphemeral(user, sub string, timeout time.Duration) (fakeslack.Ephemeral, error) {
	var got fakeslack.Ephemeral
	_, err := h.fs.WaitEphemeral(user, func(es []fakeslack.Ephemeral) bool {
		for _, e := range es {
			if strings.Contains(e.AllText(), sub) {
				got = e
				return true
			}
		}
		return false
	}, timeout)
	return got, err
}

// store reads the replicas' state as they do: the default REDIS_PREFIX and
// the other values from internal/config.
func (h *harness) store() *store.Approvals {
	return store.NewApprovals(h.rs.Client(), store.ApprovalsConfig{Prefix: config.DefaultRedisPrefix,
		Retention: config.DefaultAuditRetention, AuditMaxLen: config.DefaultAuditMaxLen})
}
