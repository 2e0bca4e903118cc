package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

// followAPI is what commands' poller needs of a store.
type followAPI interface {
	Follow(ctx context.Context, id string) error
	Unfollow(ctx context.Context, id string) error
	Followed(ctx context.Context) ([]string, error)
	HoldLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

var (
	_ followAPI = (*Approvals)(nil)
	_ followAPI = (*MemoryApprovals)(nil)
)

// TestFollowContract: the followed set and the named lease behave the same
// in the memory twin and on Redis (two replicas, each its own pool).
func TestFollowContract(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) (a, b followAPI, expire func())
	}{
		{"memory", func(t *testing.T) (followAPI, followAPI, func()) {
			clk := newAPClock()
			cfg := complete(ApprovalsConfig{Prefix: testPrefix(t), Now: clk.Now})
			m := NewMemoryApprovals(cfg)
			return m, m, func() { clk.Advance(time.Hour) }
		}},
		{"redis", func(t *testing.T) (followAPI, followAPI, func()) {
			cfg := complete(ApprovalsConfig{Prefix: testPrefix(t)})
			a, b := NewApprovals(testRedis(t), cfg), NewApprovals(testRedis(t), cfg)
			return a, b, func() { time.Sleep(60 * time.Millisecond) } // Redis expires on its own clock
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			a, b, expire := be.open(t)
			ctx := t.Context()
			for _, id := range []string{"r-2", "r-1", "r-2"} {
				if err := a.Follow(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Unfollow(ctx, "r-9"); err != nil {
				t.Fatal(err)
			}
			if ids, err := b.Followed(ctx); err != nil || !slices.Equal(ids, []string{"r-1", "r-2"}) {
				t.Fatalf("Followed = %v, %v; want [r-1 r-2]", ids, err)
			}
			if err := b.Unfollow(ctx, "r-1"); err != nil {
				t.Fatal(err)
			}
			if ids, _ := a.Followed(ctx); !slices.Equal(ids, []string{"r-2"}) {
				t.Fatalf("after Unfollow: %v", ids)
			}

			steps := []struct {
				who    followAPI
				holder string
				want   bool
			}{
				{a, "A", true},  // free: taken
				{b, "B", false}, // held by A
				{a, "A", true},  // A extends its own
			}
			for i, s := range steps {
				if got, err := s.who.HoldLease(ctx, "poller", s.holder, 50*time.Millisecond); err != nil || got != s.want {
					t.Fatalf("step %d: HoldLease(%s) = %v, %v; want %v", i, s.holder, got, err, s.want)
				}
			}
			expire()
			if got, _ := b.HoldLease(ctx, "poller", "B", time.Minute); !got {
				t.Fatal("B could not take the lease after A's ran out")
			}
			if err := a.ReleaseLease(ctx, "poller", "A"); err != nil { // A lost it: no effect
				t.Fatal(err)
			}
			if got, _ := a.HoldLease(ctx, "poller", "A", time.Minute); got {
				t.Fatal("A's release removed B's lease")
			}
			if err := b.ReleaseLease(ctx, "poller", "B"); err != nil {
				t.Fatal(err)
			}
			if got, _ := a.HoldLease(ctx, "poller", "A", time.Minute); !got {
				t.Fatal("A could not take the lease B released")
			}
			if _, err := a.HoldLease(ctx, "poller", "A", 0); err == nil {
				t.Fatal("a zero ttl was accepted")
			}
		})
	}
}
