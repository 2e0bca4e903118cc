package store

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Following an MDE action is the job of one poller per deployment (see
// commands/lease.go): it holds a named lease and reads the status of every
// followed request's action in one batched call per cycle. The store keeps
// the set of followed request ids and the lease, so both survive restarts
// and pass to another replica when the holder stops.

func (k approvalKeys) followed() string         { return k.tag + ":followed" }
func (k approvalKeys) lease(name string) string { return k.tag + ":lease:" + name }

var (
	//go:embed lease_hold.lua
	leaseHoldSrc string
	//go:embed lease_release.lua
	leaseReleaseSrc string

	leaseHoldScript    = redis.NewScript(leaseHoldSrc)
	leaseReleaseScript = redis.NewScript(leaseReleaseSrc)
)

// Follow adds request id to the followed set (idempotent).
func (a *Approvals) Follow(ctx context.Context, id string) error {
	if err := a.rdb.SAdd(ctx, a.keys.followed(), id).Err(); err != nil {
		return unavailable("follow "+id, err)
	}
	return nil
}

// Unfollow removes request id from the followed set (idempotent).
func (a *Approvals) Unfollow(ctx context.Context, id string) error {
	if err := a.rdb.SRem(ctx, a.keys.followed(), id).Err(); err != nil {
		return unavailable("unfollow "+id, err)
	}
	return nil
}

// Followed lists the followed request ids, sorted.
func (a *Approvals) Followed(ctx context.Context) ([]string, error) {
	ids, err := a.rdb.SMembers(ctx, a.keys.followed()).Result()
	if err != nil {
		return nil, unavailable("list followed requests", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// HoldLease takes the lease name for holder, or extends it when holder
// already has it, for ttl; false when another holder's lease is running.
// The lease runs on Redis's clock.
func (a *Approvals) HoldLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("hold lease %s: ttl %s is too short", name, ttl)
	}
	n, err := leaseHoldScript.Run(ctx, a.rdb, []string{a.keys.lease(name)}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		return false, unavailable("hold lease "+name, err)
	}
	return n == 1, nil
}

// ReleaseLease ends holder's lease name at once, so another replica takes
// over without waiting for it to run out; nothing when holder lost it.
func (a *Approvals) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := leaseReleaseScript.Run(ctx, a.rdb, []string{a.keys.lease(name)}, holder).Err(); err != nil {
		return unavailable("release lease "+name, err)
	}
	return nil
}
