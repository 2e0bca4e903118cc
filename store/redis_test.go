package store

// Shared test setup for package store: one single-node redis-server and one
// 3-node Redis Cluster per test binary (internal/redistest.Shared), stopped
// by TestMain.

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/soc/isolate-bot/internal/redistest"
)

var shared redistest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

func testRedisServer(t testing.TB) *redistest.Server    { return shared.Server(t) }
func testClusterServer(t testing.TB) *redistest.Cluster { return shared.Cluster(t) }
func testRedis(t testing.TB) *redis.Client              { return shared.Client(t) }
func testCluster(t testing.TB) *redis.ClusterClient     { return shared.ClusterClient(t) }
func testPrefix(t testing.TB) string                    { return shared.Prefix(t) }
