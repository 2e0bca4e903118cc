package commands

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/testclock"
	"github.com/soc/isolate-bot/store"
)

// TestBatchReadSchedule: a batch's actions are read once per BulkReadEvery
// calls while it sends (at least every PollMaxInterval), then after
// PollInterval doubling up to PollMaxInterval, and never when nothing is
// left with MDE.
func TestBatchReadSchedule(t *testing.T) {
	t0 := testclock.Start
	s := &Service{cfg: testConfig()}
	s.cfg.PollInterval, s.cfg.PollMaxInterval, s.cfg.BulkReadEvery = 10*time.Second, 5*time.Minute, 100
	running := func(sent, settled int) store.Batch {
		return store.Batch{State: store.BatchRunning, CreatedAt: t0, Counts: store.BatchCounts{Total: 500, Queued: 500 - sent, Sent: sent, Succeeded: settled}}
	}
	finished := func(sent, settled int) store.Batch {
		return store.Batch{State: store.BatchDone, Counts: store.BatchCounts{Total: sent, Sent: sent, Succeeded: settled}}
	}
	read := batchReads{last: t0, sentAt: 100}
	tail := func(n int) batchReads { return batchReads{last: t0, sentAt: 300, finished: t0, tail: n} }
	for _, c := range []struct {
		name string
		f    batchReads
		b    store.Batch
		at   time.Duration
		want bool
	}{
		{"nothing sent", batchReads{}, running(0, 0), time.Hour, false},
		{"a new watcher waits for 100 calls", batchReads{}, running(99, 0), time.Minute, false},
		{"a new watcher reads after 100 calls", batchReads{}, running(100, 0), 0, true},
		{"a new watcher of a slow batch", batchReads{}, running(3, 0), 5 * time.Minute, true},
		{"a new watcher of a finished batch reads at once", batchReads{}, finished(3, 0), 0, true},
		{"99 calls since the last read", read, running(199, 0), time.Minute, false},
		{"100 calls since the last read", read, running(200, 0), time.Second, true},
		{"a slow batch is read every PollMaxInterval", read, running(101, 0), 5 * time.Minute, true},
		{"everything sent is final", read, running(300, 300), time.Hour, false},
		{"first tail read waits PollInterval", tail(0), finished(300, 0), 9 * time.Second, false},
		{"first tail read after PollInterval", tail(0), finished(300, 0), 10 * time.Second, true},
		{"third tail read waits 40 s", tail(2), finished(300, 10), 39 * time.Second, false},
		{"third tail read after 40 s", tail(2), finished(300, 10), 40 * time.Second, true},
		{"tail reads back off to PollMaxInterval", tail(20), finished(300, 10), 5 * time.Minute, true},
		{"and no further", tail(20), finished(300, 10), 5*time.Minute - time.Second, false},
		{"settled batch is not read", tail(0), finished(300, 300), time.Hour, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			if got := s.readDue(&f, c.b, t0.Add(c.at)); got != c.want {
				t.Errorf("readDue = %v; want %v", got, c.want)
			}
		})
	}
}

// TestBatchSummaryGroups: the summary groups machines by outcome, what
// needs action first, with MDE's reasons, and counts failures at MDE and
// refused calls together.
func TestBatchSummaryGroups(t *testing.T) {
	b := store.Batch{ID: "b-4", Command: store.Isolate, State: store.BatchStopped, StoppedBy: boss,
		Counts: store.BatchCounts{Total: 7, Queued: 1, Sent: 4, Failed: 1, Skipped: 1, Succeeded: 2, Unsuccessful: 1}}
	entries := []store.BatchEntry{
		{N: 1, HostName: "a", State: store.EntrySent, Status: "Succeeded"},
		{N: 2, HostName: "b", State: store.EntrySent, Status: "Failed", Reason: "Device is offline"},
		{N: 3, HostName: "c", State: store.EntrySent, Status: "Pending"},
		{N: 4, HostName: "d", State: store.EntrySent, Status: "Succeeded"},
		{N: 5, HostName: "e", State: store.EntryFailed, Reason: "MDE refused the call"},
		{N: 6, HostName: "f", State: store.EntrySkipped, Reason: "no machine has this name"},
		{N: 7, HostName: "g", State: store.EntryQueued},
	}
	m := summaryMessage(b, entries)
	if h := m.Spans; len(h) != 3 || h[1].Kind != User || h[1].Text != boss {
		t.Errorf("head does not mention who stopped the batch: %+v", h)
	}
	if got, want := m.Spans[2].Text, ": 2 isolated · 2 failed · 1 skipped · 1 still with MDE · 1 not sent"; got != want {
		t.Errorf("counts = %q; want %q", got, want)
	}
	want := []string{"isolated (2): a, d",
		"failed at MDE (Failed): Device is offline (1): b",
		"still Pending at MDE (1): c",
		"not sent: MDE refused the call (1): e",
		"skipped: no machine has this name (1): f",
		"not sent: the batch was stopped (1): g"}
	if !slices.Equal(m.List, want) {
		t.Errorf("groups:\n%q\nwant:\n%q", m.List, want)
	}
	settled := settledMessage(b, entries, false)
	if want := want[1:3]; !slices.Equal(settled.List, want) {
		t.Errorf("settled reply lists %q; want only the sent machines that did not succeed: %q", settled.List, want)
	}
}

// TestWrapJoined: a long group of host names is wrapped into lines within
// maxLineChars, every name kept whole and in order.
func TestWrapJoined(t *testing.T) {
	var hosts []string
	for i := range 500 {
		hosts = append(hosts, fmt.Sprintf("outbreak-%03d.contoso.local", i))
	}
	lines := wrapJoined("isolated (500):", hosts)
	if len(lines) < 2 {
		t.Fatalf("%d lines for 500 names; want them wrapped", len(lines))
	}
	var got []string
	for i, l := range lines {
		if len(l) > maxLineChars {
			t.Errorf("line %d has %d characters; want at most %d", i, len(l), maxLineChars)
		}
		if i == 0 {
			l = strings.TrimPrefix(l, "isolated (500): ")
		}
		got = append(got, strings.Split(l, ", ")...)
	}
	if !slices.Equal(got, hosts) {
		t.Errorf("wrapped names differ from the names given")
	}
}
