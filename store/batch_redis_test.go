package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/internal/redistest"
)

// TestBatchRedisKeys: every key of a batch has a TTL on every writing path
// (the queue is re-created by Requeue), Retention is renewed when the batch
// finishes, and all of a batch's keys hash to one Cluster slot.
func TestBatchRedisKeys(t *testing.T) {
	ctx := t.Context()
	clk := newAPClock()
	rdb := testRedis(t)
	s := NewBatches(rdb, BatchesConfig{Prefix: testPrefix(t), Retention: time.Hour, Now: clk.Now})
	b := bcCreate(t, s, bcEntries(2))
	k := s.keys(b.ID)
	checkTTLs := func(when string, keys ...string) {
		t.Helper()
		for _, key := range keys {
			ttl, err := rdb.PTTL(ctx, key).Result()
			if err != nil || ttl <= 0 || ttl > time.Hour {
				t.Errorf("%s: PTTL %s = %v, %v; want in (0, 1h]", when, key, ttl, err)
			}
		}
	}
	checkTTLs("after create", k.all()...)
	e1 := bcClaim(t, s, b.ID, "r1")
	e2 := bcClaim(t, s, b.ID, "r1")
	if n, _ := rdb.Exists(ctx, k.queue).Result(); n != 0 {
		t.Fatalf("queue should be empty (gone) after claiming all")
	}
	if err := s.Requeue(ctx, e2); err != nil {
		t.Fatal(err)
	}
	checkTTLs("after requeue", k.all()...)
	e2 = bcClaim(t, s, b.ID, "r1")
	for _, key := range k.all() {
		if err := rdb.PExpire(ctx, key, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []BatchEntry{e1, e2} {
		if _, _, err := s.Finish(ctx, e, EntrySent, "a", ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{k.meta, k.claimed, k.entries} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= time.Minute {
			t.Errorf("after the batch finished, PTTL %s = %v; want Retention renewed", key, ttl)
		}
	}

	cl := testCluster(t)
	var slot int64 = -1
	for _, key := range k.all() {
		got, err := cl.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if slot >= 0 && got != slot {
			t.Errorf("key %s in slot %d, others in %d", key, got, slot)
		}
		slot = got
	}
}

// TestBatchRedisCommands pins the Redis commands per entry (INFO
// commandstats counts what the scripts call): the drain's per-machine cost
// besides the limiter, and the follower's cost per status read.
func TestBatchRedisCommands(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client() // own server: commandstats are global
	clk := newAPClock()
	s := NewBatches(rdb, BatchesConfig{Prefix: "cmds", Retention: time.Hour, Now: clk.Now})
	b := bcCreate(t, s, bcEntries(3))
	bcClaim(t, s, b.ID, "warm") // loads the scripts
	count := func(what string, op func(), want int) {
		t.Helper()
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		op()
		n, cmds := serverCommands(t, rdb)
		if n != want {
			t.Errorf("%s: %d Redis commands (%v); want %d", what, n, cmds, want)
		}
	}
	var e BatchEntry
	count("claim from the queue", func() { e = bcClaim(t, s, b.ID, "r1") }, 6)
	count("finish, not the last", func() {
		if _, _, err := s.Finish(ctx, e, EntrySent, "a", ""); err != nil {
			t.Fatal(err)
		}
	}, 5)
	count("progress read", func() { bcGet(t, s, b.ID) }, 3)

	// Following: one script whatever the number of results (EXISTS, HMGET,
	// one HSET, a HINCRBY per counter that moved).
	e = bcClaim(t, s, b.ID, "r1")
	if _, _, err := s.Finish(ctx, e, EntrySent, "b", ""); err != nil {
		t.Fatal(err)
	}
	rs := []ActionResult{{N: 2, ActionID: "a", Status: "Succeeded"}, {N: 3, ActionID: "b", Status: "Failed", Detail: "offline"}}
	record := func(want int) func() {
		return func() {
			if got, err := s.RecordResults(ctx, b.ID, rs); err != nil || len(got) != want {
				t.Fatalf("RecordResults = %d entries, %v; want %d", len(got), err, want)
			}
		}
	}
	count("record 2 final results", record(2), 5)
	rs = slices.Repeat(rs, 50)
	count("record 100 results, none new", record(0), 2)
	count("claim a reply", func() {
		if ok, err := s.ClaimReply(ctx, b.ID, "summary"); !ok || err != nil {
			t.Fatalf("ClaimReply = %v, %v", ok, err)
		}
	}, 2)
}

// serverCommands sums INFO commandstats without the script and CONFIG
// calls themselves (EVALSHA is the round trip, not work).
func serverCommands(t *testing.T, rdb *redis.Client) (int, []string) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n, cmds := 0, []string{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || name == "evalsha" || name == "eval" || name == "multi" || name == "exec" || strings.HasPrefix(name, "config") || name == "info" {
			continue
		}
		var c int
		if _, err := fmt.Sscanf(rest, "%d", &c); err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		n += c
		cmds = append(cmds, fmt.Sprintf("%s×%d", name, c))
	}
	return n, cmds
}
