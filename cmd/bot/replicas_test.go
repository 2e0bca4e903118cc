package main

// Multi-replica, fault and load tests of the real binary (issue 5). Each
// test runs `bot` as separate OS processes (see procs_test.go) and plays
// Slack users against them; every test ends by grepping all process output
// for the credentials.

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
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

// TestSurvivorTakesOverExecuting: a replica is SIGKILLed while its isolate
// POST is in flight (MDE hangs after acting). Once the request's lease has
// passed, the surviving replica's scheduler takes it over, finds MDE's
// action by its marker and finishes the request without a second POST.
//
// MDE_CALL_TIMEOUT=5s keeps the lease (twice the call timeout) short.
func TestSurvivorTakesOverExecuting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	lease := []string{"MDE_CALL_TIMEOUT", "5s"}
	a, b := h.start("replica-a", lease...), h.start("replica-b", lease...)
	a.waitReady(t)
	b.waitReady(t)
	if err := h.fs.WaitConnections(2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ms := h.addMachines(1)
	m := ms[0]
	h.isolate("U0ANA1", m)
	card := h.waitCards(ms, 20*time.Second)[m.ComputerDNSName]
	id, _ := card.Button(bot.ActionApprove)

	h.mde.Hang(fakemde.OpIsolate, 5*time.Minute) // MDE acts, then never answers
	h.fs.ClickButton("U0MGR1", chanSOC, card.TS, bot.ActionApprove)
	if err := h.mde.WaitCount(fakemde.OpIsolate, 1, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, h.allTails())
	}
	var victim, survivor *proc
	waitUntil(t, 10*time.Second, "the replica that approved "+id.Value, func() bool {
		for _, p := range []*proc{a, b} {
			if p.hasLog("message", "approved", "request_id", id.Value) {
				victim = p
			}
		}
		return victim != nil
	})
	survivor = a
	if victim == a {
		survivor = b
	}
	killedAt := time.Now()
	victim.kill(t)

	th, err := h.fs.WaitThread(chanSOC, card.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Found the MDE Isolate action for this request")
	}, 100*time.Second)
	if err != nil {
		t.Fatalf("survivor did not finish the request: %v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, card.TS)), h.allTails())
	}
	t.Logf("survivor finished %s %s after the kill", id.Value, time.Since(killedAt).Round(time.Second))
	if !threadHas(th, "nothing was sent again") {
		t.Errorf("thread does not say nothing was sent again:\n%s", threadText(th))
	}
	if !survivor.hasLog("message", "took over a stranded request; reconciling with MDE before any call", "request_id", id.Value) {
		t.Errorf("%s did not log the takeover", survivor.name)
	}
	req, err := h.store().Get(context.Background(), id.Value)
	// Done once the action is final; until then it stays executing, followed.
	if err != nil || (req.State != store.Done && req.State != store.Executing) || req.MachineActionID == "" {
		t.Errorf("request in Redis: state %q action %q err %v; want it to hold the MDE action", req.State, req.MachineActionID, err)
	}

	survivor.stop(t, 20*time.Second)
	acts, err := h.mde.Sim.MachineActions(context.Background(), m.ID)
	if err != nil || len(acts) != 1 {
		t.Fatalf("MDE has %d actions for the machine (err %v), want exactly 1", len(acts), err)
	}
	if acts[0].ID != req.MachineActionID {
		t.Errorf("request records action %s, MDE has %s", req.MachineActionID, acts[0].ID)
	}
	if n := h.mde.Count(fakemde.OpIsolate); n != 1 {
		t.Errorf("%d isolate POSTs, want exactly 1", n)
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

// TestRedisDownMidFlow: Redis dies while a request is pending. New commands
// and clicks are refused with a message naming the state store, MDE gets
// nothing, and /readyz says which check fails. Redis comes back (AOF on)
// and everything recovers by itself: ready again, the pending request intact
// and approvable, exactly one POST.
func TestRedisDownMidFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{redis: redistest.Options{AppendOnly: true}})
	p := h.start("bot")
	p.waitReady(t)
	ms := h.addMachines(2)
	h.isolate("U0ANA1", ms[0])
	card := h.waitCards(ms[:1], 20*time.Second)[ms[0].ComputerDNSName]
	btn, ok := card.Button(bot.ActionApprove)
	if !ok {
		t.Fatalf("card has no Approve button: %s", card.AllText())
	}

	h.rs.Stop()
	h.isolate("U0ANA2", ms[1])
	if _, err := h.waitEphemeral("U0ANA2", "state store", 15*time.Second); err != nil {
		t.Errorf("/isolate with Redis down: %v\n%s", err, p.tail())
	}
	h.fs.Click("U0MGR1", chanSOC, card.TS, btn.ActionID, btn.BlockID, btn.Value)
	if _, err := h.waitEphemeral("U0MGR1", "state store", 15*time.Second); err != nil {
		t.Errorf("click with Redis down: %v\n%s", err, p.tail())
	}
	body := p.waitReadyz(t, http.StatusServiceUnavailable, 10*time.Second)
	if !regexp.MustCompile(`(?m)^fail state: .*state store unavailable`).MatchString(body) {
		t.Errorf("/readyz does not name the state store:\n%s", body)
	}
	if n := h.mde.Count(fakemde.OpIsolate); n != 0 {
		t.Errorf("%d isolate POSTs while the state store was down, want 0", n)
	}
	if rs := roots(h.fs.Messages(chanSOC)); len(rs[ms[1].ComputerDNSName]) != 0 {
		t.Errorf("a card was posted for %s while the state store was down", ms[1].ComputerDNSName)
	}

	h.rs.Restart()
	p.waitReadyz(t, http.StatusOK, 20*time.Second)
	h.fs.Click("U0MGR2", chanSOC, card.TS, btn.ActionID, btn.BlockID, btn.Value)
	th, err := h.fs.WaitThread(chanSOC, card.TS, func(r []fakeslack.Message) bool { return threadHas(r, "Sent to MDE") }, 20*time.Second)
	if err != nil {
		t.Fatalf("the pending request did not survive the outage: %v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, card.TS)), p.tail())
	}
	if !threadHas(th, "Approved by <@U0MGR2>") {
		t.Errorf("thread lacks the approval after the outage:\n%s", threadText(th))
	}
	p.stop(t, 20*time.Second)
	if n := h.mde.Count(fakemde.OpIsolate); n != 1 {
		t.Errorf("%d isolate POSTs, want exactly 1", n)
	}
}

// TestSlackFaults: Slack refuses apps.connections.open for a while at
// start, then asks for a refresh (disconnect message), then the network
// drops every connection. The bot reconnects each time, and a command sent
// during or after each fault is handled exactly once, although the fake
// redelivers nearly every envelope (its redelivery timeout is 1 µs).
func TestSlackFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{slack: fakeslack.Options{RedeliveryTimeout: time.Microsecond}})
	h.fs.FailAlways("apps.connections.open", http.StatusInternalServerError, -1, "internal_error")
	p := h.start("bot")
	if _, err := h.fs.WaitCalls("apps.connections.open", 3, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.tail())
	}
	if code, body := p.readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "fail slack") {
		t.Errorf("/readyz while Slack refuses connections: %d %q, want 503 naming slack", code, body)
	}
	h.fs.ClearFaults("apps.connections.open")
	if err := h.fs.WaitConnections(1, 20*time.Second); err != nil {
		t.Fatalf("no connection after the faults cleared: %v\n%s", err, p.tail())
	}
	p.waitReady(t)

	ms := h.addMachines(5)
	var envs []fakeslack.Envelope
	envs = append(envs, h.isolate("U0ANA1", ms[0]))
	h.waitCards(ms[:1], 20*time.Second)

	opened := h.fs.ConnectionsOpened()
	h.fs.Disconnect("refresh_requested")
	envs = append(envs, h.isolate("U0ANA2", ms[1])) // no live connection: waits for the new one
	if err := h.fs.WaitConnectionsOpened(opened+1, 20*time.Second); err != nil {
		t.Fatalf("no reconnect after disconnect: %v\n%s", err, p.tail())
	}
	if err := h.fs.WaitConnections(1, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	envs = append(envs, h.isolate("U0ANA3", ms[2]))
	h.waitCards(ms[:3], 20*time.Second)

	opened = h.fs.ConnectionsOpened()
	h.fs.DropConnections()
	envs = append(envs, h.isolate("U0ANA1", ms[3]))
	if err := h.fs.WaitConnectionsOpened(opened+1, 40*time.Second); err != nil {
		t.Fatalf("no reconnect after the connections dropped: %v\n%s", err, p.tail())
	}
	if err := h.fs.WaitConnections(1, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	envs = append(envs, h.isolate("U0ANA2", ms[4]))
	cards := h.waitCards(ms, 30*time.Second)

	for _, e := range envs {
		if _, err := h.fs.WaitAck(e.ID, 10*time.Second); err != nil {
			t.Errorf("envelope %s: %v", e.ID, err)
		}
	}
	p.stop(t, 20*time.Second)

	redelivered := 0
	for _, e := range h.fs.Envelopes() {
		if len(e.Deliveries) > 1 {
			redelivered++
		}
	}
	if redelivered == 0 {
		t.Error("no envelope was redelivered; the de-duplication was not exercised")
	}
	// After the process is gone: exactly one card and one "created" reply
	// per request, however often its envelope arrived.
	byHost := roots(h.fs.Messages(chanSOC))
	for _, m := range ms {
		if n := len(byHost[m.ComputerDNSName]); n != 1 {
			t.Errorf("%s: %d cards, want 1", m.ComputerDNSName, n)
		}
		if n := countText(h.fs.Thread(chanSOC, cards[m.ComputerDNSName].TS), "created by"); n != 1 {
			t.Errorf("%s: %d \"created\" replies, want 1", m.ComputerDNSName, n)
		}
	}
	if n := len(byHost[""]); n != 0 {
		t.Errorf("%d unexpected root messages", n)
	}
	t.Logf("connections opened %d, envelopes redelivered %d of %d", h.fs.ConnectionsOpened(), redelivered, len(h.fs.Envelopes()))
}

// TestMDESlowOrDown: slow MDE lookups never delay Slack acks, and the
// requester hears back in plain words; an approved request whose POST MDE
// answers with 503 twice (outcome unknown, no action found within the
// minute reconciling looks, each time) ends failed
// with an explanation in its thread; the bot keeps serving.
func TestMDESlowOrDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	p := h.start("bot")
	p.waitReady(t)
	ms := h.addMachines(3)

	// Lookups hang longer than the command may take.
	h.mde.Hang(fakemde.OpMachines, 40*time.Second)
	e := h.isolate("U0ANA1", ms[0])
	ack, err := h.fs.WaitAck(e.ID, 3*time.Second)
	if err != nil {
		t.Fatalf("no ack while MDE is slow: %v", err)
	}
	if ack.Latency > time.Second {
		t.Errorf("ack took %s while MDE was slow, want well under Slack's 3 s", ack.Latency)
	}
	got, err := h.waitEphemeral("U0ANA1", "could not look up", 40*time.Second)
	if err != nil {
		t.Errorf("requester not told about the slow lookup: %v\n%s", err, p.tail())
	} else {
		t.Logf("requester told after %s: %s", got.At.Sub(ack.At).Round(time.Second), got.AllText())
	}
	h.mde.Hang(fakemde.OpMachines, 0)

	// 503 to the POST, twice: outcome unknown, nothing found, gives up.
	h.isolate("U0ANA1", ms[1])
	card := h.waitCards(ms[1:2], 20*time.Second)[ms[1].ComputerDNSName]
	h.mde.FailNext(fakemde.OpIsolate, fakemde.Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "try later"})
	h.mde.FailNext(fakemde.OpIsolate, fakemde.Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "try later"})
	h.fs.ClickButton("U0MGR1", chanSOC, card.TS, bot.ActionApprove)
	// Each unknown outcome is reconciled for a minute before anything else.
	th, err := h.fs.WaitThread(chanSOC, card.TS, func(r []fakeslack.Message) bool { return threadHas(r, "Failed:") }, 150*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, card.TS)), p.tail())
	}
	for _, want := range []string{"did not confirm the call", "check the MDE portal"} {
		if !threadHas(th, want) {
			t.Errorf("thread lacks %q:\n%s", want, threadText(th))
		}
	}
	id, _ := card.Button(bot.ActionApprove)
	req, err := h.store().Get(context.Background(), id.Value)
	if err != nil || req.State != store.Failed {
		t.Errorf("request state %q (err %v), want failed", req.State, err)
	}
	if acts, _ := h.mde.Sim.MachineActions(context.Background(), ms[1].ID); len(acts) != 0 {
		t.Errorf("MDE has %d actions for the machine, want none", len(acts))
	}

	// Still serving.
	h.isolate("U0ANA2", ms[2])
	h.waitCards(ms[2:3], 20*time.Second)
	p.stop(t, 20*time.Second)
	if n := h.mde.Count(fakemde.OpIsolate); n != 2 {
		t.Errorf("%d isolate POSTs, want 2 (the first and one resend)", n)
	}
}

// TestLoadTwoReplicas: 500 slash commands at once across two replicas.
// Each goes through the worker pool and two Redis de-duplication keys and
// answers with an ephemeral; every one is acked within Slack's 3 s.
func TestLoadTwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	const n = 500
	h := newHarness(t, harnessOptions{})
	a, b := h.start("replica-a", "LOG_LEVEL", "info"), h.start("replica-b", "LOG_LEVEL", "info")
	a.waitReady(t)
	b.waitReady(t)
	if err := h.fs.WaitConnections(2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	users := strings.Split(analysts, ",")
	envs := make([]fakeslack.Envelope, 0, n)
	for i := range n {
		envs = append(envs, h.fs.SlashCommand(users[i%len(users)], chanSOC, "/isolate", "help"))
	}
	var lat []time.Duration
	busy := 0
	for _, e := range envs {
		ack, err := h.fs.WaitAck(e.ID, 10*time.Second)
		if err != nil {
			t.Fatalf("envelope %s: %v", e.ID, err)
		}
		if ack.Latency > 3*time.Second {
			t.Errorf("envelope %s acked after %s, over Slack's 3 s", e.ID, ack.Latency)
		}
		if strings.Contains(string(ack.Payload), "busy") {
			busy++
		}
		lat = append(lat, ack.Latency)
	}
	// Every command was handled: one help text per command.
	helps := func() int {
		c := 0
		for _, u := range users {
			for _, e := range h.fs.Ephemerals(u) {
				if e.Via == "chat.postEphemeral" && strings.Contains(e.AllText(), "isolates a machine") {
					c++
				}
			}
		}
		return c
	}
	waitUntil(t, 60*time.Second, fmt.Sprintf("%d help answers", n-busy), func() bool { return helps() >= n-busy })
	if busy > 0 {
		t.Errorf("%d of %d commands were refused as busy", busy, n)
	}

	rssA, errA := a.peakRSSMiB()
	rssB, errB := b.peakRSSMiB()
	if errA != nil || errB != nil {
		t.Errorf("peak RSS: %v %v", errA, errB)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	perConn := map[int]int{}
	for _, e := range h.fs.Envelopes() {
		perConn[e.Deliveries[0].ConnID]++
	}
	t.Logf("LOAD: acks=%d p50=%s p99=%s max=%s rss_peak_a=%.1fMiB rss_peak_b=%.1fMiB per_conn=%v",
		len(lat), pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), rssA, rssB, perConn)
	a.stop(t, 20*time.Second)
	b.stop(t, 20*time.Second)
	// Counted after both processes are gone, so a late duplicate shows.
	if got := helps(); got != n-busy {
		t.Errorf("%d help answers, want %d: a command was handled twice", got, n-busy)
	}
}

// TestSurvivorTakesOverQueued: the replica holding a request queued behind
// the rate limit is SIGKILLed. When the queued slot comes (plus the lease),
// the surviving replica's scheduler takes the request over, finds no MDE
// action for it and sends it: exactly once, never early. The dead
// replica's reserved slot stays spent (nobody can know it was not used), so
// the survivor queues for the next window: about two minutes in all.
func TestSurvivorTakesOverQueued(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	// Creating a request reads MDE (machine, actions); with one call per
	// minute only the first could be created, so a replica with the default
	// limits posts the cards and leaves.
	setup := h.start("setup")
	setup.waitReady(t)
	ms := h.addMachines(2)
	for _, m := range ms {
		h.isolate("U0ANA1", m)
	}
	cards := h.waitCards(ms, 20*time.Second)
	setup.stop(t, 20*time.Second)

	knobs := []string{"RATE_LIMIT_PER_MINUTE", "1", "RATE_LIMIT_PER_HOUR", "10", "MDE_CALL_TIMEOUT", "3s"}
	a, b := h.start("replica-a", knobs...), h.start("replica-b", knobs...)
	a.waitReady(t)
	b.waitReady(t)
	if err := h.fs.WaitConnections(2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	first, second := cards[ms[0].ComputerDNSName], cards[ms[1].ComputerDNSName]
	id1, _ := first.Button(bot.ActionApprove)
	id2, _ := second.Button(bot.ActionApprove)
	// The fake deals envelopes round-robin over the two connections: a
	// harmless envelope between the clicks sends both clicks to one replica,
	// so the status follower of the first request dies with it too.
	// The first request must have taken the minute's only slot before the
	// second is approved.
	h.fs.ClickButton("U0MGR1", chanSOC, first.TS, bot.ActionApprove)
	if _, err := h.fs.WaitThread(chanSOC, first.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Sent to MDE")
	}, 20*time.Second); err != nil {
		t.Fatalf("first request not sent: %v\n%s", err, h.allTails())
	}
	if _, err := h.fs.WaitAck(h.fs.SlashCommand("U0ANA1", chanSOC, "/isolate", "help").ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	h.fs.ClickButton("U0MGR1", chanSOC, second.TS, bot.ActionApprove)
	th, err := h.fs.WaitThread(chanSOC, second.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Queued behind the MDE rate limit")
	}, 20*time.Second)
	if err != nil {
		t.Fatalf("second request not queued: %v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, second.TS)), h.allTails())
	}
	var runAt time.Time
	for _, r := range th {
		if g := queuedAt.FindStringSubmatch(r.AllText()); g != nil {
			runAt = clockAfter(r.PostedAt, g[1], g[2], g[3])
		}
	}
	var holder, survivor *proc
	for _, p := range []*proc{a, b} {
		if p.hasLog("message", "approved", "request_id", id2.Value) {
			holder = p
		}
	}
	if holder == nil || !holder.hasLog("message", "approved", "request_id", id1.Value) {
		t.Fatalf("both approvals should have landed on one replica (round-robin delivery)\n%s", h.allTails())
	}
	survivor = a
	if holder == a {
		survivor = b
	}
	holder.kill(t)
	if n := h.mde.Count(fakemde.OpIsolate); n != 1 {
		t.Fatalf("%d isolate POSTs before the queued slot, want 1", n)
	}

	th, err = h.fs.WaitThread(chanSOC, second.TS, func(r []fakeslack.Message) bool {
		return threadHas(r, "Sent to MDE")
	}, 150*time.Second)
	if err != nil {
		t.Fatalf("survivor did not send the queued request: %v\n%s\n%s", err, threadText(h.fs.Thread(chanSOC, second.TS)), h.allTails())
	}
	posts := h.mde.Requests(fakemde.OpIsolate)
	if len(posts) != 2 {
		t.Fatalf("%d isolate POSTs, want 2 (one per request)", len(posts))
	}
	// hh:mm:ss in the thread truncates the slot: one second of slack.
	if posts[1].At.Before(runAt) || posts[1].At.Sub(posts[0].At) < 60*time.Second {
		t.Errorf("queued call sent at %s, %s after the first; its slot was %s", posts[1].At.Format(time.TimeOnly),
			posts[1].At.Sub(posts[0].At).Round(time.Millisecond), runAt.Format(time.TimeOnly))
	}
	if !survivor.hasLog("message", "took over a stranded request; reconciling with MDE before any call", "request_id", id2.Value) {
		t.Errorf("%s did not log the takeover of %s", survivor.name, id2.Value)
	}
	survivor.stop(t, 20*time.Second)
	req, err := h.store().Get(context.Background(), id2.Value)
	// Stopped while following: executing with its action, for the next
	// replica to follow; or done if the action finished first.
	if err != nil || (req.State != store.Done && req.State != store.Executing) || req.MachineActionID == "" {
		t.Errorf("%s in Redis: %q with action %q, %v; want it to hold the MDE action", id2.Value, req.State, req.MachineActionID, err)
	}
	acts, err := h.mde.Sim.MachineActions(context.Background(), ms[1].ID)
	if err != nil || len(acts) != 1 || acts[0].ID != req.MachineActionID {
		t.Errorf("MDE actions for the queued machine: %d (err %v); want exactly the request's one", len(acts), err)
	}
}

// store reads the replicas' state as they do: the default REDIS_PREFIX and
// the other values from internal/config.
func (h *harness) store() *store.Approvals {
	return store.NewApprovals(h.rs.Client(), store.ApprovalsConfig{Prefix: config.DefaultRedisPrefix,
		Retention: config.DefaultAuditRetention, AuditMaxLen: config.DefaultAuditMaxLen})
}
