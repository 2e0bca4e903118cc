package redistest

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestStartStopRestart(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		opts        Options
		wantSurvive bool
	}{
		{"volatile", Options{}, false},
		{"appendonly", Options{AppendOnly: true}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := StartWith(t, tc.opts)
			c := s.Client()
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			pid := s.proc.Pid
			s.Stop()
			if err := c.Ping(ctx).Err(); err == nil {
				t.Fatal("PING succeeded after Stop")
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Fatalf("process %d still exists after Stop (kill 0: %v)", pid, err)
			}
			s.Restart()
			got, err := c.Get(ctx, "k").Result()
			if tc.wantSurvive && (err != nil || got != "v") {
				t.Fatalf("after Restart GET k = %q, %v; want v", got, err)
			}
			if !tc.wantSurvive && err == nil {
				t.Fatalf("after Restart GET k = %q, want nil (no persistence)", got)
			}
		})
	}
}

func TestLaunchClose(t *testing.T) {
	s, err := Launch(Options{Args: []string{"--maxmemory", "10mb"}})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	cfg, err := c.ConfigGet(context.Background(), "maxmemory").Result()
	if err != nil || cfg["maxmemory"] != "10485760" {
		t.Fatalf("CONFIG GET maxmemory = %v, %v; want 10485760 (extra Args applied)", cfg, err)
	}
	s.Close()
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s left after Close: %v", s.dir, err)
	}
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("client still usable after Close")
	}
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	cl := StartCluster(t, 3)
	if len(cl.Addrs) != 3 {
		t.Fatalf("Addrs = %v", cl.Addrs)
	}
	c := cl.Client()
	// Keys spread over all shards: the cluster serves every slot.
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		if err := c.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var masters atomic.Int32 // ForEachMaster runs fn concurrently
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		masters.Add(1)
		return m.Ping(ctx).Err()
	})
	if err != nil || masters.Load() != 3 {
		t.Fatalf("ForEachMaster: %d masters, %v; want 3", masters.Load(), err)
	}
}

func TestStartClusterTooSmall(t *testing.T) {
	if _, err := LaunchCluster(2); err == nil {
		t.Fatal("LaunchCluster(2) succeeded; want an error (cluster needs 3 masters)")
	}
}
