package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// apHits: hits count across replicas within one fixed window, start again
// after it, and concurrent hits are each counted once.
func apHits(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, clk := setup(t, ApprovalsConfig{})
	b := a.replica(t)
	const window = 300 * time.Millisecond
	if n, err := a.Hits(ctx, "U1"); err != nil || n != 0 {
		t.Fatalf("Hits before any hit = %d, %v; want 0", n, err)
	}
	for i, s := range []approvalsAPI{a, b, a} {
		if n, err := s.Hit(ctx, "U1", time.Minute); err != nil || n != int64(i+1) {
			t.Fatalf("hit %d = %d, %v", i+1, n, err)
		}
	}
	if n, err := b.Hits(ctx, "U1"); err != nil || n != 3 {
		t.Fatalf("Hits = %d, %v; want 3", n, err)
	}
	if n, err := a.Hits(ctx, "U2"); err != nil || n != 0 {
		t.Fatalf("another key's Hits = %d, %v; want 0", n, err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := []approvalsAPI{a, b}[i%2].Hit(ctx, "U3", time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, err := a.Hits(ctx, "U3"); err != nil || n != 20 {
		t.Fatalf("20 concurrent hits counted %d, %v", n, err)
	}
	if _, err := a.Hit(ctx, "U1", 0); err == nil {
		t.Error("Hit with a zero window succeeded")
	}
	// A short window, on its own key: it ends (on the injected clock for
	// the memory twin, on Redis's for Redis) and counting starts again.
	if n, err := a.Hit(ctx, "U5", window); err != nil || n != 1 {
		t.Fatalf("first hit on U5 = %d, %v", n, err)
	}
	clk.Advance(window)
	apEventually(t, "the window ends", func() bool {
		n, err := a.Hits(ctx, "U5")
		return err == nil && n == 0
	})
	if n, err := a.Hit(ctx, "U5", window); err != nil || n != 1 {
		t.Fatalf("first hit of a new window = %d, %v; want 1", n, err)
	}
}

// apAuditTail: the global stream's last entries, oldest first, including
// events with no request.
func apAuditTail(t *testing.T, setup apSetup) {
	ctx := t.Context()
	a, _ := setup(t, ApprovalsConfig{})
	for i := range 5 {
		e := Event{Type: EventRefused, Actor: "U" + strconv.Itoa(i), Reason: fmt.Sprintf("refusal %d", i)}
		if i == 4 {
			e.RequestID = "r-9"
		}
		if err := a.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.AuditTail(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, e := range got {
		actors = append(actors, e.Actor)
	}
	if fmt.Sprint(actors) != "[U2 U3 U4]" || got[2].RequestID != "r-9" || got[0].Reason != "refusal 2" {
		t.Fatalf("AuditTail(3) = %+v", got)
	}
	if h, err := a.History(ctx, ""); err != nil || len(h) != 0 {
		t.Fatalf("events without a request have a history: %+v, %v", h, err)
	}
}

// TestFirstDeliveryFloodIsOneKey: a flood of deliveries adds members to one
// short-lived sorted set, not a key each; its memory stays small.
func TestFirstDeliveryFloodIsOneKey(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	p := testPrefix(t)
	a := NewApprovals(rdb, complete(ApprovalsConfig{Prefix: p}))
	const n = 2000
	for i := range n {
		// The two keys bot records per slash command.
		for _, k := range []string{fmt.Sprintf("env:%08x-1f2e-4d3c-8b9a-%012x", i, i), fmt.Sprintf("trigger:%d.%d.0123456789abcdef0123456789abcdef", 1764406800+i, i)} {
			if ok, err := a.FirstDelivery(ctx, k, time.Hour); err != nil || !ok {
				t.Fatalf("FirstDelivery(%s) = %v, %v", k, ok, err)
			}
		}
	}
	keys, err := rdb.Keys(ctx, "{"+p+"}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("keys after %d deliveries: %v; want the one sorted set", 2*n, keys)
	}
	mem, err := rdb.MemoryUsage(ctx, keys[0], 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d delivery keys: %d bytes (%d per delivery)", 2*n, mem, mem/(2*n))
	if perKey := mem / (2 * n); perKey > 160 {
		t.Errorf("%d bytes per delivery key; want at most 160", perKey)
	}
	if ttl, err := rdb.PTTL(ctx, keys[0]).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("PTTL %s = %v, %v; want at most the ttl", keys[0], ttl, err)
	}
}
