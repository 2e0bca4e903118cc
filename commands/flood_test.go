package commands

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/mock"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/store"
)

// Flood target (issue 9): 2,000 refused commands from one user grow Redis
// by at most 50 keys and 2 MiB.
const (
	floodCommands = 2000
	floodMaxKeys  = 50
	floodMaxBytes = 2 << 20
)

// redisFootprint is DBSIZE and INFO memory's used_memory.
func redisFootprint(t *testing.T, rdb *redis.Client) (keys, bytes int64) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^used_memory:(\d+)\r?$`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no used_memory in INFO memory:\n%s", info)
	}
	bytes, _ = strconv.ParseInt(m[1], 10, 64)
	return keys, bytes
}

// TestRefusalFloodRedisFootprint sends floodCommands refused commands from
// one user (not allowed, bad input, unknown machine, wrong channel) through
// a Service on the real Redis store, each with the two delivery keys the
// Slack transport records (envelope and trigger id), and measures how much
// Redis grew.
func TestRefusalFloodRedisFootprint(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	scfg := storeConfig(nil)
	scfg.Prefix = "flood"
	approvals := store.NewApprovals(rdb, scfg)
	cfg := testConfig()
	cfg.AllowedUsers = append(cfg.AllowedUsers, stranger) // so that every kind of refusal is reached
	cfg.AllowedChannels = []string{channel}
	svc := New(cfg, Deps{
		Defender: defender.NewSimulator(nil), Approvals: approvals, Throttle: approvals,
		Messenger: (&recorder{}).messenger(), Directory: &mock.Directory{GroupMembersFn: func(context.Context, string) ([]string, error) { return nil, nil }},
		Logger: zerolog.Nop(), Version: "test",
	})
	t.Cleanup(func() { svc.Stop(); svc.Wait() })
	ctx := context.Background()
	keys0, bytes0 := redisFootprint(t, rdb)

	refused := []struct{ text, channel string }{
		{"web-01 sideways x", channel},                 // bad input
		{"nope.contoso.local full x", channel},         // unknown machine
		{"web-01.contoso.local full x", "CELSEWHERE"},  // wrong channel
		{fmt.Sprintf("%040x full x", 0xdead), channel}, // unknown machine id
	}
	for i := range floodCommands {
		c := refused[i%len(refused)]
		inv := Invocation{Command: "/isolate", Text: c.text, User: stranger, Channel: c.channel,
			TriggerID:  fmt.Sprintf("%d.%d.0123456789abcdef0123456789abcdef", 1764406800+i, i),
			DeliveryID: fmt.Sprintf("%08x-1f2e-4d3c-8b9a-%012x", i, i)}
		for _, k := range []string{"env:" + inv.DeliveryID, "trigger:" + inv.TriggerID} {
			if first, err := approvals.FirstDelivery(ctx, k, time.Hour); err != nil || !first {
				t.Fatalf("FirstDelivery(%s) = %v, %v", k, first, err)
			}
		}
		if err := svc.Command(ctx, inv); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	keys1, bytes1 := redisFootprint(t, rdb)
	t.Logf("%d refused commands from one user: +%d keys, +%d bytes (%.2f MiB)", floodCommands, keys1-keys0, bytes1-bytes0, float64(bytes1-bytes0)/(1<<20))
	if keys1-keys0 > floodMaxKeys || bytes1-bytes0 > floodMaxBytes {
		t.Fatalf("Redis grew by %d keys and %d bytes; want at most %d keys and %d bytes", keys1-keys0, bytes1-bytes0, floodMaxKeys, floodMaxBytes)
	}
}
