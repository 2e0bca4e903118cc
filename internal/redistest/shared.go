package redistest

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Shared is one single-node redis-server and one 3-node Cluster for a whole
// test binary, each started on first use; the package's TestMain calls
// Close. Tests isolate themselves with their own key prefix (Prefix),
// never with FLUSHALL; a test that stops, restarts or flushes a server
// starts its own with Start. The zero value is ready to use.
type Shared struct {
	serverOnce  sync.Once
	server      *Server
	serverErr   error
	clusterOnce sync.Once
	cluster     *Cluster
	clusterErr  error
	prefixes    atomic.Int64
}

// Server returns the binary's single-node server.
func (s *Shared) Server(t testing.TB) *Server {
	t.Helper()
	s.serverOnce.Do(func() { s.server, s.serverErr = Launch(Options{}) })
	if s.serverErr != nil {
		t.Fatalf("shared redis-server: %v", s.serverErr)
	}
	return s.server
}

// Cluster returns the binary's 3-node cluster.
func (s *Shared) Cluster(t testing.TB) *Cluster {
	t.Helper()
	s.clusterOnce.Do(func() { s.cluster, s.clusterErr = LaunchCluster(3) })
	if s.clusterErr != nil {
		t.Fatalf("shared redis cluster: %v", s.clusterErr)
	}
	return s.cluster
}

// Client returns a new client (its own pool, like a separate replica) of
// the single node, closed when t ends.
func (s *Shared) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Server(t).Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// ClusterClient returns a new client of the cluster, closed when t ends.
func (s *Shared) ClusterClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: s.Cluster(t).Addrs})
	t.Cleanup(func() { c.Close() })
	return c
}

// Prefix returns a key prefix unique within the test binary, readable in
// redis-cli MONITOR output, and free of the hash-tag braces.
func (s *Shared) Prefix(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch r {
		case '{', '}', ' ', '/':
			return '_'
		}
		return r
	}, t.Name())
	return fmt.Sprintf("t%d-%s", s.prefixes.Add(1), name)
}

// Close stops whatever was started.
func (s *Shared) Close() {
	if s.server != nil {
		s.server.Close()
	}
	if s.cluster != nil {
		s.cluster.Close()
	}
}
