package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/fakeslack"
)

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
