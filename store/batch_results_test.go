package store

import (
	"testing"
	"time"
)

func TestFinalStatus(t *testing.T) {
	for s, want := range map[string]bool{
		"Succeeded": true, "Failed": true, "TimeOut": true, "Cancelled": true,
		"Pending": false, "InProgress": false, "": false, "succeeded": false, "Timeout": false, "Canceled": false,
	} {
		if got := FinalStatus(s); got != want {
			t.Errorf("FinalStatus(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestBatchCountsSettled(t *testing.T) {
	for _, tc := range []struct {
		c    BatchCounts
		want bool
	}{
		{BatchCounts{}, true},
		{BatchCounts{Total: 3, Queued: 2, Skipped: 1}, true},
		{BatchCounts{Total: 3, Sent: 2, Succeeded: 1}, false},
		{BatchCounts{Total: 3, Sent: 2, Succeeded: 1, Unsuccessful: 1, Failed: 1}, true},
		{BatchCounts{Total: 2, Sent: 2, Unsuccessful: 2}, true},
	} {
		if got := tc.c.Settled(); got != tc.want {
			t.Errorf("%+v.Settled() = %v, want %v", tc.c, got, tc.want)
		}
	}
}

// TestBatchRedisResultsKeepKeys: recording results and claiming replies on
// a done batch neither renews nor drops its TTLs nor changes its state, and
// on a gone batch writes no key (a key without TTL would live forever).
func TestBatchRedisResultsKeepKeys(t *testing.T) {
	ctx := t.Context()
	clk := newAPClock()
	rdb := testRedis(t)
	s := NewBatches(rdb, BatchesConfig{Prefix: testPrefix(t), Retention: time.Hour, Now: clk.Now})
	b := bcCreate(t, s, bcEntries(1))
	bcSend(t, s, b.ID, 1)
	k := s.keys(b.ID)
	for _, key := range k.all() {
		if err := rdb.PExpire(ctx, key, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got := bcRecord(t, s, b.ID, res(1, "Succeeded", "")); len(got) != 1 {
		t.Fatalf("RecordResults returned %d entries, want 1", len(got))
	}
	if ok, err := s.ClaimReply(ctx, b.ID, "settled"); !ok || err != nil {
		t.Fatalf("ClaimReply = %v, %v", ok, err)
	}
	for _, key := range []string{k.meta, k.entries} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("PTTL %s = %v; want the TTL it had (≤ 1m)", key, ttl)
		}
	}
	if st := rdb.HGet(ctx, k.meta, "st").Val(); st != string(BatchDone) {
		t.Errorf("state = %q, want done", st)
	}
	if err := rdb.Del(ctx, k.all()...).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordResults(ctx, b.ID, []ActionResult{res(1, "Failed", "x")}); err == nil {
		t.Errorf("RecordResults on a gone batch succeeded")
	}
	if _, err := s.ClaimReply(ctx, b.ID, "summary"); err == nil {
		t.Errorf("ClaimReply on a gone batch succeeded")
	}
	if n := rdb.Exists(ctx, k.all()...).Val(); n != 0 {
		t.Errorf("%d keys of the gone batch exist again", n)
	}
}
