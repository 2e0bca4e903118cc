package ratelimit

// Shared test setup for package ratelimit: one single-node redis-server and one
// 3-node Redis Cluster per test binary, started lazily on first use and
// stopped by TestMain. Tests isolate themselves with their own key prefix
// (testPrefix), never with FLUSHALL. Tests that stop, restart or flush a
// server start their own with redistest.Start.

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/internal/redistest"
)

var shared struct {
	redisOnce   sync.Once
	redis       *redistest.Server
	redisErr    error
	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
	prefixes    atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.redis != nil {
		shared.redis.Close()
	}
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	os.Exit(code)
}

// testRedisServer returns the binary's shared single-node server.
func testRedisServer(t testing.TB) *redistest.Server {
	t.Helper()
	shared.redisOnce.Do(func() { shared.redis, shared.redisErr = redistest.Launch(redistest.Options{}) })
	if shared.redisErr != nil {
		t.Fatalf("shared redis-server: %v", shared.redisErr)
	}
	return shared.redis
}

// testClusterServer returns the binary's shared 3-node cluster.
func testClusterServer(t testing.TB) *redistest.Cluster {
	t.Helper()
	shared.clusterOnce.Do(func() { shared.cluster, shared.clusterErr = redistest.LaunchCluster(3) })
	if shared.clusterErr != nil {
		t.Fatalf("shared redis cluster: %v", shared.clusterErr)
	}
	return shared.cluster
}

// testRedis returns a new client (its own pool, like a separate replica) of
// the shared single node, closed when t ends.
func testRedis(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testRedisServer(t).Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// testCluster returns a new client of the shared cluster, closed when t ends.
func testCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testClusterServer(t).Addrs})
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a key prefix unique within the test binary, readable
// in redis-cli MONITOR output.
func testPrefix(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch r {
		case '{', '}', ' ', '/':
			return '_'
		}
		return r
	}, t.Name())
	return fmt.Sprintf("t%d-%s", shared.prefixes.Add(1), name)
}
