package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/store"
)

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
