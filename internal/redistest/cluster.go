package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Addrs []string
	Nodes []*Server

	t       testing.TB
	mu      sync.Mutex
	clients []*redis.ClusterClient
}

// StartCluster starts n ≥ 3 cluster nodes for the duration of t, assigns
// the 16384 slots among them and waits for cluster_state:ok on every node.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	c, err := launchCluster(dirs)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// LaunchCluster is StartCluster not tied to a test; Close it when done.
func LaunchCluster(n int) (*Cluster, error) {
	dirs := make([]string, n)
	for i := range dirs {
		d, err := os.MkdirTemp("", "redistest-cluster-")
		if err != nil {
			for _, d := range dirs[:i] {
				os.RemoveAll(d)
			}
			return nil, fmt.Errorf("create temp dir: %w", err)
		}
		dirs[i] = d
	}
	c, err := launchCluster(dirs)
	if err != nil {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
		return nil, err
	}
	for _, s := range c.Nodes {
		s.ownDir = true
	}
	return c, nil
}

func launchCluster(dirs []string) (_ *Cluster, err error) {
	if len(dirs) < 3 {
		return nil, fmt.Errorf("a Redis Cluster needs at least 3 masters, asked for %d", len(dirs))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli not found in PATH (install it: apt-get install redis-tools): %w", err)
	}
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for _, d := range dirs {
		s, err := launch(d, Options{}, true)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create %v: %w\n%s", c.Addrs, err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		rc := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := rc.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				rc.Close()
				return nil, fmt.Errorf("node %s not cluster_state:ok after 30s (err %v): %s", s.Addr, err, info)
			}
			time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
		}
		rc.Close()
	}
	return c, nil
}

// Client returns a new cluster client, closed on cleanup.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	if c.t != nil {
		c.t.Cleanup(func() { cc.Close() })
		return cc
	}
	c.mu.Lock()
	c.clients = append(c.clients, cc)
	c.mu.Unlock()
	return cc
}

// Close stops every node and closes the clients handed out by Client.
func (c *Cluster) Close() {
	c.mu.Lock()
	cs := c.clients
	c.clients = nil
	c.mu.Unlock()
	for _, cc := range cs {
		cc.Close()
	}
	var wg sync.WaitGroup
	for _, s := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
}
