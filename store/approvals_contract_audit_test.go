package store

import (
	"fmt"
	"reflect"
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
// (approximately) and AuditMaxAge; a request's own stream is not.
func apAuditTrimming(t *testing.T, setup apSetup) {
	ctx := t.Context()
	// Trimming is approximate in Redis: whole stream nodes of up to 100
	// (stream-node-max-entries) entries go at once.
	const maxLen, node = 10, 100
	a, _ := setup(t, ApprovalsConfig{AuditMaxLen: maxLen, AuditMaxAge: time.Hour})
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

	const maxAge = 300 * time.Millisecond
	b, bclk := setup(t, ApprovalsConfig{AuditMaxAge: maxAge})
	for range 150 {
		if err := b.Append(ctx, Event{Type: EventRefused}); err != nil {
			t.Fatal(err)
		}
	}
	bclk.Advance(maxAge + time.Millisecond)
	apEventually(t, "entries older than AuditMaxAge are trimmed", func() bool {
		if err := b.Append(ctx, Event{Type: EventRefused}); err != nil {
			t.Fatal(err)
		}
		return b.auditLen(t) < node
	})
}
