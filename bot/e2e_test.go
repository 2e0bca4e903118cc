package bot_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/store"
)

// End-to-end: real slack-go (Socket Mode + Web API) against fakeslack, the
// real commands.Service, defender.Client with MSAL against a fake Azure AD
// and MDE over TLS, and store on a real redis-server.

const evilComment = "<!channel> <@U1> <http://x|y> & @here"

// TestE2EIsolateApproved: the whole happy path, with a hostile comment and a
// Slack reconnect between the card and the click. The card shows the
// comment escaped, the approval makes exactly one MDE POST with the right
// body, the card loses its buttons, and the request ends done with a
// complete audit trail.
func TestE2EIsolateApproved(t *testing.T) {
	w := newWorld(t)
	w.start(e2eOptions{})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full "+evilComment)
	card, id := w.card(t, "host-42.corp.example")
	all := card.AllText()
	if strings.Contains(all, "<!channel>") || strings.Contains(all, "<@U1>") || strings.Contains(all, "<http://x|y>") ||
		!strings.Contains(all, "&lt;!channel&gt; &lt;@U1&gt; &lt;http://x|y&gt; &amp; @here") {
		t.Errorf("card shows the comment unescaped:\n%s", all)
	}
	assertNoRaw(t, []byte(fmt.Sprintf(`{"text":%q,"blocks":%s}`, card.Text, card.Blocks)))
	if card.Form.Get("unfurl_links") != "false" || card.Form.Has("link_names") || card.Form.Has("parse") {
		t.Errorf("card posted with form %v", card.Form)
	}

	// Slack refreshes the connection before the manager clicks.
	opened := w.fs.ConnectionsOpened()
	w.fs.Disconnect("refresh_requested")
	if err := w.fs.WaitConnectionsOpened(opened+1, wait); err != nil {
		t.Fatal(err)
	}
	if err := w.fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}

	w.fs.Click("U0BOB", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)
	posts := w.mde.waitPosts(t, 1)
	if p := posts[0]; p.Op != "isolate" || p.MachineID != machineA || p.Body["IsolationType"] != "Full" ||
		!strings.Contains(p.Body["Comment"], id) {
		t.Errorf("MDE POST = %+v", p)
	}
	r := w.state(t, id, store.Done)
	if r.DecidedBy != "U0BOB" || r.MachineActionID == "" {
		t.Errorf("done request = %+v", r)
	}
	m, _ := w.fs.Message("C1", card.TS)
	if _, ok := m.Button(ActionApprove); ok || !strings.Contains(m.AllText(), "Approved by <@U0BOB>") {
		t.Errorf("card after approval still has buttons or lacks the approval line:\n%s", m.AllText())
	}
	if len(w.fs.Thread("C1", card.TS)) == 0 {
		t.Error("no audit replies in the card's thread")
	}
	// The done event is appended right after the transition: poll.
	waitUntil(t, "complete audit trail", func() bool {
		hist, err := w.store.History(context.Background(), id)
		if err != nil {
			return false
		}
		var types []string
		for _, e := range hist {
			types = append(types, e.Type)
		}
		for _, want := range []string{store.EventCreated, store.EventApproved, store.EventMDECall, store.EventDone} {
			if !slices.Contains(types, want) {
				return false
			}
		}
		return true
	})
	if n := len(w.mde.Posts()); n != 1 {
		t.Errorf("%d MDE POSTs, want 1", n)
	}
}

// TestE2ERefusals: everything the bot must refuse, and that nothing reaches
// MDE for any of them.
func TestE2ERefusals(t *testing.T) {
	w := newWorld(t)
	w.start(e2eOptions{})

	w.fs.SlashCommand("U0EVE", "C1", "/isolate", "host-42.corp.example full not allowed")
	w.ephemeral(t, "U0EVE", "not")

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "no-such-host full typo")
	w.ephemeral(t, "U0ALICE", "no-such-host")

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example sideways bad type")
	w.ephemeral(t, "U0ALICE", "usage")

	w.fs.SlashCommand("U0ALICE", "C2", "/isolate", "host-42.corp.example full bot not in channel")
	if e := w.ephemeral(t, "U0ALICE", "channel"); e.Via != "response_url" || e.Channel != "C2" {
		t.Errorf("not-in-channel notice came via %s in %s, want response_url in C2", e.Via, e.Channel)
	}

	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full real one")
	card, id := w.card(t, "host-42.corp.example")

	w.fs.SlashCommand("U0BOB", "C1", "/isolate", "host-42.corp.example selective again")
	w.ephemeral(t, "U0BOB", id)

	w.fs.Click("U0ALICE", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)
	w.ephemeral(t, "U0ALICE", "two-person")

	w.fs.Click("U0EVE", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)
	w.ephemeral(t, "U0EVE", "approve")

	w.fs.Click("U0BOB", "C1", card.TS, ActionApprove, BlockIDPrefix+"r-999999", "r-999999")
	w.ephemeral(t, "U0BOB", "r-999999")

	if r, err := w.store.Get(context.Background(), id); err != nil || r.State != store.Pending {
		t.Errorf("after refused clicks the request is %v, %v; want pending", r.State, err)
	}
	w.fs.Click("U0CAROL", "C1", card.TS, ActionDeny, BlockIDPrefix+id, id)
	w.state(t, id, store.Denied)
	waitUntil(t, "card shows the denial", func() bool {
		m, _ := w.fs.Message("C1", card.TS)
		_, buttons := m.Button(ActionApprove)
		return !buttons && strings.Contains(m.AllText(), "Denied by <@U0CAROL>")
	})
	w.fs.Click("U0BOB", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)
	w.ephemeral(t, "U0BOB", "U0CAROL")
	if n := len(w.mde.Posts()); n != 0 {
		t.Errorf("%d MDE POSTs for refused or denied requests, want 0", n)
	}
}

// TestE2EDoubleClicks: two managers (and one of them twice) approve at the
// same moment: exactly one MDE call, the late clickers are told who won.
func TestE2EDoubleClicks(t *testing.T) {
	w := newWorld(t)
	w.start(e2eOptions{})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full race")
	card, id := w.card(t, "host-42.corp.example")
	var wg sync.WaitGroup
	for _, u := range []string{"U0BOB", "U0CAROL", "U0BOB"} {
		wg.Go(func() { w.fs.Click(u, "C1", card.TS, ActionApprove, BlockIDPrefix+id, id) })
	}
	wg.Wait()
	r := w.state(t, id, store.Done)
	loser := "U0CAROL"
	if r.DecidedBy == "U0CAROL" {
		loser = "U0BOB"
	}
	w.ephemeral(t, loser, "already")
	if n := len(w.mde.Posts()); n != 1 {
		t.Errorf("%d MDE POSTs after three concurrent approvals, want 1", n)
	}
}

// TestE2EExpiry: an unanswered request expires (TTL scaled down); the card
// says so and a late approval is refused without calling MDE.
func TestE2EExpiry(t *testing.T) {
	w := newWorld(t)
	w.start(e2eOptions{env: map[string]string{"APPROVAL_TTL": "300ms"}})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full nobody answers")
	card, id := w.card(t, "host-42.corp.example")
	w.state(t, id, store.Expired)
	waitUntil(t, "card shows expiry", func() bool {
		m, _ := w.fs.Message("C1", card.TS)
		_, buttons := m.Button(ActionApprove)
		return !buttons && strings.Contains(m.AllText(), "Expired")
	})
	w.fs.Click("U0BOB", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)
	w.ephemeral(t, "U0BOB", "expired")
	if n := len(w.mde.Posts()); n != 0 {
		t.Errorf("%d MDE POSTs for an expired request", n)
	}
}

// TestE2EQueuedBehindRateLimit: with the MDE budget at one call per
// (scaled) minute, the second approved isolation waits for the next window
// instead of exceeding the limit, and its thread says it is queued.
func TestE2EQueuedBehindRateLimit(t *testing.T) {
	w := newWorld(t)
	const window = 1500 * time.Millisecond
	w.start(e2eOptions{env: map[string]string{"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_PER_HOUR": "100"},
		fixed: func(f *config.Fixed) { f.RateLimitMinute, f.RateLimitHour = window, time.Hour }})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", machineA+" full first")
	cardA, idA := w.card(t, "host-42.corp.example")
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", machineB+" full second")
	cardB, idB := w.card(t, "host-43.corp.example")
	w.fs.Click("U0BOB", "C1", cardA.TS, ActionApprove, BlockIDPrefix+idA, idA)
	w.mde.waitPosts(t, 1)
	w.fs.Click("U0BOB", "C1", cardB.TS, ActionApprove, BlockIDPrefix+idB, idB)
	w.thread(t, cardB.TS, "queue")
	posts := w.mde.waitPosts(t, 2)
	if gap := posts[1].At.Sub(posts[0].At); gap < window-100*time.Millisecond {
		t.Errorf("second isolate POST %s after the first; the limit allows one per %s", gap, window)
	}
	w.state(t, idA, store.Done)
	w.state(t, idB, store.Done)
}

// TestE2EMDEThrottled: MDE answers 429 with Retry-After; the bot waits it
// out and sends again, once.
func TestE2EMDEThrottled(t *testing.T) {
	w := newWorld(t)
	w.start(e2eOptions{})
	w.mde.throttle(1, 1)
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example selective throttled")
	card, id := w.card(t, "host-42.corp.example")
	w.fs.Click("U0BOB", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)
	posts := w.mde.waitPosts(t, 2)
	if posts[0].Status != 429 || posts[1].Status != 201 {
		t.Fatalf("POST statuses %d, %d; want 429 then 201", posts[0].Status, posts[1].Status)
	}
	if gap := posts[1].At.Sub(posts[0].At); gap < 900*time.Millisecond {
		t.Errorf("resent %s after a 429 with Retry-After: 1", gap)
	}
	w.thread(t, card.TS, "429")
	w.state(t, id, store.Done)
	if n := len(w.mde.Posts()); n != 2 {
		t.Errorf("%d POSTs, want 2", n)
	}
}

// TestE2ERestartBetweenCardAndApproval: the process that posted the card
// stops; a new process (new Runner, Service, clients) handles the click.
func TestE2ERestartBetweenCardAndApproval(t *testing.T) {
	w := newWorld(t)
	first := w.start(e2eOptions{})
	w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "host-42.corp.example full restart")
	card, id := w.card(t, "host-42.corp.example")
	first.stop(t)
	if first.app.Connected() {
		t.Error("stopped instance reports connected")
	}
	w.start(e2eOptions{})
	w.fs.Click("U0CAROL", "C1", card.TS, ActionApprove, BlockIDPrefix+id, id)
	w.mde.waitPosts(t, 1)
	r := w.state(t, id, store.Done)
	if r.DecidedBy != "U0CAROL" {
		t.Errorf("decided by %q", r.DecidedBy)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestE2ELoad: 200 slash commands at once, then 5 approvals one by one
// and 15 at once.
// Reports ack latency (as the fake Slack sees it, WebSocket round trip
// included, and inside the Runner) and the time from the Approve click
// leaving Slack to the isolate POST reaching MDE, with a cached token.
func TestE2ELoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	var machines []defender.Machine
	for i := range 20 {
		machines = append(machines, e2eMachine(fmt.Sprintf("%040x", i+1), fmt.Sprintf("load-%02d.corp.example", i)))
	}
	w := newWorld(t, machines...)
	in := w.start(e2eOptions{})

	// Unloaded: one command at a time.
	var seq []time.Duration
	for range 20 {
		e := w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "help")
		a, err := w.fs.WaitAck(e.ID, wait)
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, a.Latency)
	}
	t.Logf("slash commands one at a time: ack latency at the fake Slack p50=%s max=%s", percentile(seq, .5), percentile(seq, 1))

	var envs []fakeslack.Envelope
	for range 200 {
		envs = append(envs, w.fs.SlashCommand("U0ALICE", "C1", "/isolate", "help"))
	}
	var wire []time.Duration
	for _, e := range envs {
		a, err := w.fs.WaitAck(e.ID, wait)
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, a.Latency)
	}
	// Inside the Runner, as production reports it on /metrics. The Runner
	// records an ack just after sending it: poll until all 220 are counted.
	var inside ackHistogram
	waitUntil(t, "/metrics counts the 220 acks", func() bool {
		inside = scrapeAcks(t, in.app.Addr())
		return inside.count >= 220
	})
	t.Logf("200 concurrent slash commands: ack latency at the fake Slack p50=%s p99=%s max=%s; inside the Runner p50<=%s p99<=%s",
		percentile(wire, .5), percentile(wire, .99), percentile(wire, 1), inside.quantile(.5), inside.quantile(.99))
	// The bound is Slack's deadline (3 s: past it Slack shows an error and
	// redelivers), not a speed target: CI shares 2 cores among every
	// package's tests. How fast acks are is the figure logged above.
	if p := percentile(wire, .99); p > 2*time.Second {
		t.Errorf("ack p99 %s; acks must stay below Slack's 3 s deadline", p)
	}

	// 20 pending requests, then all approved at once.
	cards := map[string]fakeslack.Message{}
	ids := map[string]string{}
	for _, m := range machines {
		w.fs.SlashCommand("U0ALICE", "C1", "/isolate", m.ComputerDNSName+" full load")
		cards[m.ID], ids[m.ID] = w.card(t, m.ComputerDNSName)
	}
	// Click → POST latency: 5 approvals one at a time, then 15 at once.
	clickAt := func(envID string) time.Time {
		for _, e := range w.fs.Envelopes() {
			if e.ID == envID {
				return e.SentAt
			}
		}
		t.Fatalf("no envelope %s", envID)
		return time.Time{}
	}
	postAt := func(machineID string) time.Time {
		for _, p := range w.mde.Posts() {
			if p.MachineID == machineID {
				return p.At
			}
		}
		t.Fatalf("no POST for %s", machineID)
		return time.Time{}
	}
	var single, burst []time.Duration
	for i, m := range machines[:5] {
		e := w.fs.Click("U0BOB", "C1", cards[m.ID].TS, ActionApprove, BlockIDPrefix+ids[m.ID], ids[m.ID])
		w.mde.waitPosts(t, i+1)
		single = append(single, postAt(m.ID).Sub(clickAt(e.ID)))
	}
	clicks := map[string]string{} // envelope id → machine id
	for _, m := range machines[5:] {
		e := w.fs.Click("U0BOB", "C1", cards[m.ID].TS, ActionApprove, BlockIDPrefix+ids[m.ID], ids[m.ID])
		clicks[e.ID] = m.ID
	}
	w.mde.waitPosts(t, len(machines))
	for env, mid := range clicks {
		burst = append(burst, postAt(mid).Sub(clickAt(env)))
	}
	t.Logf("approvals one at a time: click → MDE POST p50=%s max=%s; 15 at once: p50=%s p99=%s max=%s",
		percentile(single, .5), percentile(single, 1), percentile(burst, .5), percentile(burst, .99), percentile(burst, 1))
	if p := percentile(burst, .99); p > 2*time.Second {
		t.Errorf("click → POST p99 %s", p)
	}
	tokens := w.mde.Count(fakemde.OpToken)
	if tokens != 1 {
		t.Errorf("%d token requests; the token must be cached", tokens)
	}
}
