package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/internal/redistest"
)

// TestApprovalsContract runs the one contract suite against the memory
// twin, a single Redis node and a 3-node Redis Cluster.
func TestApprovalsContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		runApprovalsContract(t, func(t testing.TB, cfg ApprovalsConfig) approvalsUnderTest {
			m := NewMemoryApprovals(complete(cfg))
			return approvalsUnderTest{
				approvalsAPI: m,
				replica:      func(testing.TB) approvalsAPI { return m },
				auditLen:     func(testing.TB) int64 { return int64(m.auditLen()) },
				auditIDs:     func(testing.TB) []string { return m.auditIDs() },
			}
		})
	})
	t.Run("redis", func(t *testing.T) {
		runApprovalsContract(t, func(t testing.TB, cfg ApprovalsConfig) approvalsUnderTest {
			return redisUnderTest(t, cfg, func(t testing.TB) redis.UniversalClient { return testRedis(t) })
		})
	})
	t.Run("cluster", func(t *testing.T) {
		runApprovalsContract(t, func(t testing.TB, cfg ApprovalsConfig) approvalsUnderTest {
			return redisUnderTest(t, cfg, func(t testing.TB) redis.UniversalClient { return testCluster(t) })
		})
	})
}

// redisUnderTest gives each instance (and each replica) its own client,
// i.e. its own connection pool, as separate bot replicas have.
func redisUnderTest(t testing.TB, cfg ApprovalsConfig, dial func(t testing.TB) redis.UniversalClient) approvalsUnderTest {
	open := func(t testing.TB) *Approvals { return NewApprovals(dial(t), complete(cfg)) }
	a := open(t)
	return approvalsUnderTest{
		approvalsAPI: a,
		replica:      func(t testing.TB) approvalsAPI { return open(t) },
		auditLen: func(t testing.TB) int64 {
			n, err := a.rdb.XLen(context.Background(), a.keys.audit()).Result()
			if err != nil {
				t.Fatalf("XLEN: %v", err)
			}
			return n
		},
		auditIDs: func(t testing.TB) []string {
			msgs, err := a.rdb.XRange(context.Background(), a.keys.audit(), "-", "+").Result()
			if err != nil {
				t.Fatalf("XRANGE: %v", err)
			}
			ids := make([]string, len(msgs))
			for i, m := range msgs {
				ids[i] = m.ID
			}
			return ids
		},
	}
}

// apComment is a realistic 300-character analyst comment.
var apComment = strings.Repeat("Beaconing to 203.0.113.7 every 60s; EDR alert 4242 ", 6)[:300]

func apRealistic(now time.Time) Request {
	r := apRequest("9f2c4ab1e0d3c5b7a8f6e4d2c0b9a7f5e3d1c2b4", now.Add(15*time.Minute))
	r.HostName = "fin-laptop-0427.corp.example.com"
	r.Comment = apComment
	r.Requester = "U04ABCDEF12"
	r.Channel = "C05SOCALERTS"
	r.MessageTS = "1732851234.123456"
	return r
}

// TestApprovalsRedisMemoryUsage reports MEMORY USAGE of a pending record
// with a 300-character comment (target: under 2 KB), and of the same
// request once executing.
func TestApprovalsRedisMemoryUsage(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	a := NewApprovals(rdb, complete(ApprovalsConfig{Prefix: testPrefix(t)}))
	r, err := a.Create(ctx, apRealistic(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Comment) != 300 {
		t.Fatalf("comment has %d characters", len(r.Comment))
	}
	usage := func() (int64, string) {
		t.Helper()
		n, err := rdb.MemoryUsage(ctx, a.keys.req(r.ID), 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := rdb.ObjectEncoding(ctx, a.keys.req(r.ID)).Result()
		return n, enc
	}
	pending, enc := usage()
	t.Logf("pending request record: MEMORY USAGE %d bytes (%s)", pending, enc)
	if pending >= 2048 {
		t.Errorf("pending record uses %d bytes, target < 2048", pending)
	}
	now := time.Now()
	for _, ch := range []Change{
		{To: Approved, By: "U04MANAGER1", RunAt: now, CheckAt: now.Add(time.Minute)},
		{To: Executing, MachineActionID: "7d8f3c2a-1b4e-4f6a-9c0d-2e5b8a1f3c7d", Note: "Pending"},
	} {
		if r, err = a.Transition(ctx, r.ID, r.State, ch); err != nil {
			t.Fatal(err)
		}
	}
	executing, enc := usage()
	t.Logf("executing request record: MEMORY USAGE %d bytes (%s)", executing, enc)
	machine, _ := rdb.MemoryUsage(ctx, a.keys.machine(r.MachineID), 0).Result()
	t.Logf("machine index: %d bytes", machine)

	// The comment exceeds hash-max-listpack-value (64), so Redis uses a
	// hashtable. Raising it (a deployment choice, see README.md, "Record
	// fields") keeps records in the compact listpack encoding.
	lp := redistest.StartWith(t, redistest.Options{Args: []string{"--hash-max-listpack-value", "512"}}).Client()
	b := NewApprovals(lp, complete(ApprovalsConfig{}))
	r2, err := b.Create(ctx, apRealistic(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := lp.MemoryUsage(ctx, b.keys.req(r2.ID), 0).Result()
	enc, _ = lp.ObjectEncoding(ctx, b.keys.req(r2.ID)).Result()
	t.Logf("pending request record with hash-max-listpack-value 512: MEMORY USAGE %d bytes (%s)", n, enc)
	if enc != "listpack" || n >= pending {
		t.Errorf("with hash-max-listpack-value 512: %d bytes (%s), want a smaller listpack", n, enc)
	}
}

// TestApprovalsRedisKeysAndTTLs checks on a cluster that every key shares
// one slot, that only documented keys exist, and that every per-request or
// per-delivery key carries a TTL no longer than configured (no key left
// without one except the small global ones).
func TestApprovalsRedisKeysAndTTLs(t *testing.T) {
	ctx := context.Background()
	rdb := testCluster(t)
	const retention = time.Hour
	clk := newAPClock()
	p := "{" + testPrefix(t) + "}"
	a := NewApprovals(rdb, complete(ApprovalsConfig{Prefix: p[1 : len(p)-1], Retention: retention, Now: clk.Now}))
	r, err := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transition(ctx, r.ID, Pending, Change{To: Approved}); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(ctx, Event{RequestID: r.ID, Type: EventApproved}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FirstDelivery(ctx, "Ev1", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Hit(ctx, "refused:U1", time.Minute); err != nil {
		t.Fatal(err)
	}
	wantTTL := map[string]time.Duration{
		p + ":req:r-1":                 retention,
		p + ":machine:" + apMachine(1): retention,
		p + ":audit:r-1":               retention,
		p + ":seen":                    5 * time.Minute, // every delivery key, one sorted set
		p + ":hits:refused:U1":         time.Minute,
		p + ":due":                     -1, // holds only open requests
		p + ":seq":                     -1,
		p + ":audit":                   -1, // trimmed by MAXLEN/MINID
	}
	var (
		mu    sync.Mutex // ForEachMaster runs the func concurrently
		found []string
	)
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		// The cluster is shared: list this test's keys (no glob characters in p).
		keys, err := n.Keys(ctx, p+"*").Result()
		mu.Lock()
		defer mu.Unlock()
		found = append(found, keys...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != len(wantTTL) {
		t.Errorf("keys in the cluster: %v, want %d keys", found, len(wantTTL))
	}
	slot := int64(-1)
	for key, want := range wantTTL {
		s, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if slot >= 0 && s != slot {
			t.Errorf("key %s in slot %d, others in %d", key, s, slot)
		}
		slot = s
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want < 0 && ttl != -1 || want > 0 && (ttl <= want-time.Minute || ttl > want) {
			t.Errorf("PTTL %s = %v, want %v", key, ttl, want)
		}
	}
}

// TestApprovalsRedisTransitionRefreshesTTL: every write resets Retention on
// the record and on the machine index that points to it.
func TestApprovalsRedisTransitionRefreshesTTL(t *testing.T) {
	ctx := context.Background()
	// Its own server: it flushes the script cache.
	rdb := redistest.Start(t).Client()
	a := NewApprovals(rdb, complete(ApprovalsConfig{Retention: time.Hour}))
	r, err := a.Create(ctx, apRequest(apMachine(1), time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{a.keys.req(r.ID), a.keys.machine(r.MachineID)}
	for _, k := range keys {
		rdb.PExpire(ctx, k, time.Second)
	}
	// Also prove Script.Run survives an emptied script cache.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transition(ctx, r.ID, Pending, Change{To: Approved}); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl < 59*time.Minute {
			t.Errorf("PTTL %s = %v after Transition, want ~1h", k, ttl)
		}
	}
}

// TestApprovalsRedisSurvivesRestart: with AOF (appendfsync always) nothing
// approved is lost across a crash and restart, ids keep increasing, and the
// scripts are reloaded on demand.
func TestApprovalsRedisSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	a := NewApprovals(srv.Client(), complete(ApprovalsConfig{}))
	r, err := a.Create(ctx, apRequest(apMachine(1), time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	approved, err := a.Transition(ctx, r.ID, Pending, Change{To: Approved, By: "U0MGR"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(ctx, Event{RequestID: r.ID, Type: EventApproved, Actor: "U0MGR"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.FirstDelivery(ctx, "Ev1", time.Hour); !ok || err != nil {
		t.Fatal(ok, err)
	}

	srv.Restart() // SIGKILL, then start on the same port and dir

	b := NewApprovals(srv.Client(), complete(ApprovalsConfig{}))
	if got, err := b.Get(ctx, r.ID); err != nil || !reflect.DeepEqual(got, approved) {
		t.Fatalf("after restart Get = %+v, %v; want %+v", got, err, approved)
	}
	if h, err := b.History(ctx, r.ID); err != nil || len(h) != 1 || h[0].Type != EventApproved {
		t.Errorf("after restart History = %+v, %v", h, err)
	}
	if ok, err := b.FirstDelivery(ctx, "Ev1", time.Hour); ok || err != nil {
		t.Errorf("after restart FirstDelivery(Ev1) = %v, %v; want false (already seen)", ok, err)
	}
	if due, err := b.Due(ctx, 10); err != nil || len(due) != 0 {
		t.Errorf("after restart Due = %v, %v; want none yet", apIDs(due), err)
	}
	var pe *PendingError
	if _, err := b.Create(ctx, apRequest(apMachine(1), time.Now().Add(time.Hour))); !errors.As(err, &pe) || pe.Existing.ID != r.ID {
		t.Errorf("after restart duplicate Create: %v, want PendingError for %s", err, r.ID)
	}
	if _, err := b.Transition(ctx, r.ID, Approved, Change{To: Executing}); err != nil {
		t.Errorf("after restart Transition: %v", err)
	}
	if r2, err := b.Create(ctx, apRequest(apMachine(2), time.Now().Add(time.Hour))); err != nil || r2.ID != "r-3" {
		t.Errorf("after restart Create = %q, %v; want r-3 (ids never reused)", r2.ID, err)
	}
}

// TestApprovalsRedisUnavailable: with Redis down every method fails with
// ErrUnavailable (callers fail closed), never ErrNotFound or a zero value.
func TestApprovalsRedisUnavailable(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	a := NewApprovals(rdb, complete(ApprovalsConfig{}))
	r, err := a.Create(ctx, apRequest(apMachine(1), time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	calls := map[string]func() error{
		"Ping":   func() error { return a.Ping(ctx) },
		"Create": func() error { _, err := a.Create(ctx, apRequest(apMachine(2), time.Now().Add(time.Hour))); return err },
		"Get":    func() error { _, err := a.Get(ctx, r.ID); return err },
		"Transition": func() error {
			_, err := a.Transition(ctx, r.ID, Pending, Change{To: Approved})
			return err
		},
		"ForMachine":    func() error { _, err := a.ForMachine(ctx, r.MachineID); return err },
		"Due":           func() error { _, err := a.Due(ctx, 10); return err },
		"Pending":       func() error { _, err := a.Pending(ctx); return err },
		"FirstDelivery": func() error { _, err := a.FirstDelivery(ctx, "Ev1", time.Minute); return err },
		"Append":        func() error { return a.Append(ctx, Event{RequestID: r.ID, Type: EventCreated}) },
		"History":       func() error { _, err := a.History(ctx, r.ID); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}
}

// TestApprovalsRedisCorruptRecord: a record without state is an error, not
// a zero Request someone could act on.
func TestApprovalsRedisCorruptRecord(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	a := NewApprovals(rdb, complete(ApprovalsConfig{Prefix: testPrefix(t)}))
	rdb.HSet(ctx, a.keys.req("r-7"), fMachine, apMachine(1), fVersion, "1")
	if _, err := a.Get(ctx, "r-7"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get(corrupt) = %v, want a decode error", err)
	}
	rdb.HSet(ctx, a.keys.req("r-8"), fMachine, apMachine(1), fState, "pending", fVersion, "x")
	if _, err := a.Get(ctx, "r-8"); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("Get(bad version) = %v, want a version error", err)
	}
}

func ExampleMemoryApprovals_Transition() {
	ctx := context.Background()
	clk := newAPClock()
	var a approvalsAPI = NewMemoryApprovals(complete(ApprovalsConfig{Now: clk.Now}))
	r, _ := a.Create(ctx, apRequest(apMachine(1), clk.Now().Add(15*time.Minute)))
	_, err := a.Transition(ctx, r.ID, Pending, Change{To: Approved, By: "U0MGR"})
	fmt.Println(err)
	_, err = a.Transition(ctx, r.ID, Pending, Change{To: Approved, By: "U0OTHER"})
	var ce *ConflictError
	if errors.As(err, &ce) {
		fmt.Println(ce, "by", ce.Current.DecidedBy)
	}
	// Output:
	// <nil>
	// request r-1 is approved, cannot move to approved by U0MGR
}
