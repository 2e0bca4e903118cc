package commands

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/internal/testclock"
	"github.com/soc/isolate-bot/store"
)

// followedActions is the target load: 20 actions followed at once.
const followedActions = 20

// TestFollowingCostsAConstant: following 20 pending actions for 60 s at the
// production schedule costs at most 12 machine-action reads (one batched
// read per cycle instead of one per action), counted at a fake MDE reached
// over HTTP through the real client, with the real Redis store and limiter;
// and a new request's look-ups still fit in a small per-minute budget. The
// 60 s are simulated (an injected clock, one cycle a second), so the test
// takes a few seconds.
func TestFollowingCostsAConstant(t *testing.T) {
	clk := testclock.New(testclock.Start)
	mde := fakemde.New(t, clk.Now)
	mde.Sim.PendingFor, mde.Sim.CompleteAfter = 24*time.Hour, 48*time.Hour // stays Pending
	rdb := redistest.Start(t).Client()
	t.Cleanup(func() { _ = rdb.Close() })
	const perMinute = 15 // a small budget: following must leave room for look-ups
	lcfg := limiterConfig(ratelimit.Limits{PerMinute: perMinute}, nil)
	lcfg.Prefix = "follow-cost"
	gate := ratelimit.NewGate(ratelimit.New(rdb, lcfg), time.Second, nil, zerolog.Nop())
	client, err := defender.New(mdeConfig(defender.Config{APIURL: mde.URL(), AuthorityHost: mde.URL(), TenantID: fakemde.TenantID,
		ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret, HTTPClient: mde.HTTPClient(), Gate: gate, Now: clk.Now}))
	if err != nil {
		t.Fatal(err)
	}
	scfg := storeConfig(clk.Now)
	scfg.Prefix = "follow-cost"
	approvals := store.NewApprovals(rdb, scfg)
	cfg := testConfig()
	f := config.DefaultFixed()
	cfg.PollInterval, cfg.PollFastFor, cfg.PollMaxInterval, cfg.FollowFor = f.PollInterval, f.PollFastFor, f.PollMaxInterval, config.DefaultFollowFor
	rec := &recorder{}
	svc := New(cfg, Deps{Defender: client, Approvals: approvals, Messenger: rec.messenger(), Now: clk.Now,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), Version: "test"})
	t.Cleanup(func() { svc.Stop(); svc.Wait() })
	ctx := context.Background()

	var ids []string
	for i := range followedActions {
		ids = append(ids, followPending(t, svc, approvals, mde.Sim, fmt.Sprintf("%040x", 0xf0110+i)))
	}
	reads0 := mde.Count(fakemde.OpActions) + mde.Count(fakemde.OpAction)
	for range 60 {
		clk.Advance(time.Second)
		if _, err := svc.poller.cycle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reads := mde.Count(fakemde.OpActions) + mde.Count(fakemde.OpAction) - reads0
	t.Logf("following %d pending actions for 60 s cost %d machine-action reads", followedActions, reads)
	if reads == 0 || reads > 12 {
		t.Fatalf("following %d actions for 60 s cost %d machine-action reads; want 1 to 12", followedActions, reads)
	}
	for _, id := range ids {
		if r, err := approvals.Get(ctx, id); err != nil || r.State != store.Executing {
			t.Fatalf("%s is %s (%v) after 60 s of a Pending action, want executing", id, r.State, err)
		}
	}

	// A new request's look-ups (machine, actions) are admitted.
	newcomer := fmt.Sprintf("%040x", 0xf0999)
	if err := mde.Sim.AddMachine(defender.Machine{ID: newcomer, ComputerDNSName: "newcomer.contoso.local", OSPlatform: "Windows11", OnboardingStatus: "Onboarded"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Command(ctx, Invocation{Command: "/isolate", Text: newcomer + " full after the follow load", User: analyst, Channel: channel}); err != nil {
		t.Fatal(err)
	}
	if r, err := approvals.ForMachine(ctx, newcomer); err != nil || r.State != store.Pending {
		t.Fatalf("the new request was not created while %d actions are followed: %+v, %v", followedActions, r, err)
	}
	if n := mde.Throttled(fakemde.OpActions) + mde.Throttled(fakemde.OpMachine); n != 0 {
		t.Fatalf("MDE throttled %d calls", n)
	}
}

// followPending makes an executing request for machine whose MDE action
// (created in the simulator behind the fake) is followed, through done.
func followPending(t *testing.T, svc *Service, approvals *store.Approvals, sim *defender.Simulator, machine string) string {
	t.Helper()
	ctx := context.Background()
	if err := sim.AddMachine(defender.Machine{ID: machine, ComputerDNSName: machine[34:] + ".contoso.local", OSPlatform: "Windows11", OnboardingStatus: "Onboarded"}); err != nil {
		t.Fatal(err)
	}
	r, err := approvals.Create(ctx, store.Request{Command: store.Isolate, MachineID: machine, IsolationType: "Full", Requester: analyst,
		Channel: channel, MessageTS: "1700000000.0001", ExpiresAt: svc.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = approvals.Transition(ctx, r.ID, store.Pending, svc.leases.approval(boss)); err != nil {
		t.Fatal(err)
	}
	if r, err = svc.leases.claim(ctx, r); err != nil {
		t.Fatal(err)
	}
	a, err := sim.Isolate(ctx, nil, machine, defender.Full, MDEComment(r))
	if err != nil {
		t.Fatal(err)
	}
	svc.done(ctx, r, a, 201)
	return r.ID
}

// TestReadEvery pins the read schedule: every PollInterval during an
// action's first PollFastFor, then doubling each PollFastFor, up to
// PollMaxInterval.
func TestReadEvery(t *testing.T) {
	f := config.DefaultFixed()
	s := &Service{cfg: Config{PollInterval: f.PollInterval, PollFastFor: f.PollFastFor, PollMaxInterval: f.PollMaxInterval}}
	tests := []struct {
		age  time.Duration
		want time.Duration
	}{
		{0, 10 * time.Second},
		{9*time.Minute + 59*time.Second, 10 * time.Second},
		{10 * time.Minute, 20 * time.Second},
		{25 * time.Minute, 40 * time.Second},
		{45 * time.Minute, 160 * time.Second},
		{55 * time.Minute, 5 * time.Minute},
		{71 * time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := s.readEvery(tt.age); got != tt.want {
			t.Errorf("readEvery(%s) = %s, want %s", tt.age, got, tt.want)
		}
	}
}
