package store

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apAuditHistory: Append writes every field to the global stream and the
// request's own; History returns a request's events in order.
func apAuditHistory(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	at := clk.Now()
	events := []Event{
		{RequestID: "r-1", Type: EventCreated, Actor: "U0REQ", MachineID: apMachine(1), Time: at},
		{RequestID: "r-2", Type: EventCreated, Actor: "U0REQ", MachineID: apMachine(2)},
		{RequestID: "r-1", Type: EventApproved, Actor: "U0MGR", MachineID: apMachine(1), Reason: "ok <b>&</b>"},
		{Type: EventRefused, Actor: "U0X", Reason: "not allowed"},
		{RequestID: "r-1", Type: EventMDECall, Actor: "system", MachineID: apMachine(1), Operation: "isolate",
			StatusCode: 201, ActionID: "act-1", CorrelationID: "corr-9", Time: at.Add(time.Nanosecond)},
		{RequestID: "r-1", Type: EventDone, Actor: "system", Reason: "Succeeded"},
	}
	for i, e := range events {
		clk.Advance(time.Millisecond)
		if err := []approvalsAPI{a, b}[i%2].Append(ctx, e); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if events[i].Time.IsZero() {
			events[i].Time = clk.Now() // the store's clock fills it in
		}
	}
	got, err := b.History(ctx, "r-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{events[0], events[2], events[4], events[5]}
	if len(got) != len(want) {
		t.Fatalf("History(r-1) has %d events, want %d: %+v", len(got), len(want), got)
	}
	prev := ""
	for i := range want {
		if got[i].ID == "" || (prev != "" && !apIDLess(prev, got[i].ID)) {
			t.Errorf("event %d id %q does not follow %q", i, got[i].ID, prev)
		}
		prev = got[i].ID
		w := want[i]
		w.ID, w.Time = got[i].ID, w.Time.UTC()
		if !reflect.DeepEqual(got[i], w) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], w)
		}
	}
	if h, err := a.History(ctx, "r-2"); err != nil || len(h) != 1 || h[0].Type != EventCreated {
		t.Errorf("History(r-2) = %+v, %v", h, err)
	}
	if h, err := a.History(ctx, "r-404"); err != nil || len(h) != 0 {
		t.Errorf("History(unknown) = %+v, %v; want empty", h, err)
	}
	if n := a.auditLen(t); n != int64(len(events)) {
		t.Errorf("global audit length %d, want %d", n, len(events))
	}
	if err := a.Append(ctx, Event{RequestID: "r-1"}); err == nil {
		t.Error("Append without a type succeeded")
	}
}

// apAuditTrimming: the global stream is trimmed by AuditMaxLen
// (approximately); a request's own stream is not.
func apAuditTrimming(t *testing.T, setup apSetup) {
	ctx := t.Context()
	// Trimming is approximate in Redis: whole stream nodes of up to 100
	// (stream-node-max-entries) entries go at once.
	const maxLen, node = 10, 100
	a, _ := setup(t, ApprovalsConfig{AuditMaxLen: maxLen})
	for i := range 500 {
		if err := a.Append(ctx, Event{RequestID: "r-1", Type: EventStatus, Reason: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.auditLen(t); n < maxLen || n > maxLen+node {
		t.Errorf("after 500 appends with MAXLEN ~%d the stream holds %d", maxLen, n)
	}
	// The request's own stream is not trimmed by the global limit.
	if h, err := a.History(ctx, "r-1"); err != nil || len(h) != 500 || h[0].Reason != "0" || h[499].Reason != "499" {
		t.Errorf("History(r-1): %d events, %v; want all 500 in order", len(h), err)
	}
}

// apAuditRetention: Retention (AUDIT_RETENTION) governs the global stream
// too. Each append trims exactly the entries older than Retention by entry
// id time (the backend's clock: Redis's own, or the twin's injected one)
// and keeps every younger entry.
func apAuditRetention(t *testing.T, setup apSetup) {
	ctx := t.Context()
	const retention = 600 * time.Millisecond
	a, clk := setup(t, ApprovalsConfig{Retention: retention})
	var appended []string // ids, in order
	add := func() int64 {
		if err := a.Append(ctx, Event{Type: EventRefused, Actor: "U0X"}); err != nil {
			t.Fatal(err)
		}
		ids := a.auditIDs(t)
		appended = append(appended, ids[len(ids)-1])
		return apIDMillis(t, ids[len(ids)-1])
	}
	old := add()
	clk.Advance(retention / 2)
	apEventually(t, "half the retention passes", func() bool { return add() >= old+retention.Milliseconds()/2 })
	young := appended[len(appended)-1]
	clk.Advance(retention/2 + time.Millisecond)
	var last int64
	apEventually(t, "the first entry is past Retention", func() bool {
		last = add()
		return last > old+retention.Milliseconds()
	})

	got := a.auditIDs(t)
	var want []string
	for _, id := range appended {
		if apIDMillis(t, id) >= last-retention.Milliseconds() {
			want = append(want, id)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("global stream after Retention = %v, want the entries younger than Retention %v (appended %v)", got, want, appended)
	}
	if slices.Contains(got, appended[0]) {
		t.Errorf("entry %s, older than Retention, was kept", appended[0])
	}
	if !slices.Contains(got, young) {
		t.Errorf("entry %s, younger than Retention, was trimmed", young)
	}
}

// apIDMillis is the time part of a stream entry id "<ms>-<seq>".
func apIDMillis(t *testing.T, id string) int64 {
	t.Helper()
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		t.Fatalf("stream entry id %q: %v", id, err)
	}
	return n
}
