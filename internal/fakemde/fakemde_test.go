package fakemde_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
)

func newClient(t *testing.T, f *fakemde.Server) *defender.Client {
	t.Helper()
	c, err := defender.New(defender.Config{
		APIURL: f.URL(), AuthorityHost: f.URL(), TenantID: fakemde.TenantID,
		ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret,
		HTTPClient: f.HTTPClient(), UserAgent: "isolate-bot/test", MaxGetAttempts: 1,
		BaseBackoff: config.DefaultMDEBaseBackoff, MaxBackoff: config.DefaultMDEMaxBackoff,
		MaxRetryAfterWait: config.DefaultMDEMaxRetryAfterWait, AttemptTimeout: config.DefaultMDECallTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The real client, MSAL included, works against the fake end to end.
func TestRealClientAgainstFake(t *testing.T) {
	f := fakemde.New(t, nil)
	c := newClient(t, f)
	ctx := context.Background()

	ms, err := c.FindMachinesByName(ctx, "web-01")
	if err != nil || len(ms) != 1 || ms[0].ID != defender.SimWeb01 {
		t.Fatalf("FindMachinesByName(web-01) = %v, %v; want the one simulated web-01", ms, err)
	}
	a, err := c.Isolate(ctx, nil, defender.SimWeb01, defender.Full, "beacon [isolate-bot r-1]")
	if err != nil {
		t.Fatal(err)
	}
	if a.Type != "Isolate" || a.Scope != "Full" || a.Status != defender.StatusPending {
		t.Errorf("isolate returned %+v", a)
	}
	body := f.Requests(fakemde.OpIsolate)[0].Body
	if !strings.Contains(body, `"IsolationType":"Full"`) {
		t.Errorf("isolate body %s", body)
	}
	_, err = c.Isolate(ctx, nil, defender.SimWeb01, defender.Full, "again")
	if !errors.Is(err, defender.ErrAlreadyInProgress) {
		t.Errorf("second isolate: %v, want ErrAlreadyInProgress", err)
	}
	acts, err := c.MachineActions(ctx, defender.SimWeb01)
	if err != nil || len(acts) != 1 || acts[0].ID != a.ID {
		t.Errorf("MachineActions = %v, %v", acts, err)
	}
	if n := f.Count(fakemde.OpToken); n != 1 {
		t.Errorf("%d token requests, want 1 (MSAL caches)", n)
	}
}

func TestFaultsAndHang(t *testing.T) {
	f := fakemde.New(t, nil)
	c := newClient(t, f)
	ctx := context.Background()

	f.FailNext(fakemde.OpIsolate, fakemde.Fault{Status: 429, Code: "TooManyRequests", RetryAfter: 7})
	_, err := c.Isolate(ctx, nil, defender.SimWeb02, defender.Selective, "x")
	var ae *defender.APIError
	if !errors.As(err, &ae) || !errors.Is(err, defender.ErrThrottled) || ae.RetryAfter != 7*time.Second {
		t.Fatalf("429: %v", err)
	}

	f.Hang(fakemde.OpIsolate, 2*time.Second)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.Isolate(cctx, nil, defender.SimWeb02, defender.Selective, "timed out [isolate-bot r-2]")
	if !errors.Is(err, defender.ErrOutcomeUnknown) {
		t.Fatalf("hung POST: %v, want ErrOutcomeUnknown", err)
	}
	f.Hang(fakemde.OpIsolate, 0)
	// The simulator did act although the client gave up: what reconciliation must find.
	acts, err := c.MachineActions(ctx, defender.SimWeb02)
	if err != nil || len(acts) != 1 || !strings.Contains(acts[0].RequestorComment, "r-2") {
		t.Fatalf("after hang: %v, %v", acts, err)
	}
}
