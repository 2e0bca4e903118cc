package commands

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
)

// TestForbiddenNamesPermission: a 403 names the application permission the
// failed call needs. The errors come from the real MDE client answered 403
// by the fake MDE, so the test pins the Op names the client really uses.
func TestForbiddenNamesPermission(t *testing.T) {
	f := fakemde.New(t, nil)
	c, err := defender.New(defender.Config{
		APIURL: f.URL(), AuthorityHost: f.URL(), TenantID: fakemde.TenantID,
		ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret,
		HTTPClient: f.HTTPClient(), MaxGetAttempts: 1, UserAgent: "isolate-bot/test",
		BaseBackoff: config.DefaultMDEBaseBackoff, MaxBackoff: config.DefaultMDEMaxBackoff,
		MaxRetryAfterWait: config.DefaultMDEMaxRetryAfterWait, AttemptTimeout: config.DefaultMDECallTimeout,
		NotFoundRetryDelay: config.DefaultMDENotFoundRetryDelay,
	})
	if err != nil {
		t.Fatal(err)
	}
	const actionID = "5a1b2c3d-0000-4000-8000-000000000001"
	ctx := context.Background()
	for _, tc := range []struct {
		op   string // fakemde operation answered 403
		call func() error
		want string
	}{
		{fakemde.OpIsolate, func() error { _, err := c.Isolate(ctx, nil, defender.SimWeb01, defender.Full, "x"); return err }, "Machine.Isolate"},
		{fakemde.OpUnisolate, func() error { _, err := c.Unisolate(ctx, nil, defender.SimWeb01, "x"); return err }, "Machine.Isolate"},
		{fakemde.OpCancel, func() error { _, err := c.CancelMachineAction(ctx, nil, actionID, "x"); return err }, "Machine.Isolate"},
		{fakemde.OpMachine, func() error { _, err := c.Machine(ctx, defender.SimWeb01); return err }, "Machine.Read.All"},
		{fakemde.OpMachines, func() error { _, err := c.FindMachinesByName(ctx, "web-01"); return err }, "Machine.Read.All"},
		{fakemde.OpAction, func() error { _, err := c.MachineAction(ctx, actionID); return err }, "Machine.Read.All"},
		{fakemde.OpActions, func() error { _, err := c.MachineActions(ctx, defender.SimWeb01); return err }, "Machine.Read.All"},
	} {
		t.Run(tc.op, func(t *testing.T) {
			f.FailNext(tc.op, fakemde.Fault{Status: 403, Code: "Forbidden", Message: "the application lacks a role"})
			err := tc.call()
			if !errors.Is(err, defender.ErrForbidden) {
				t.Fatalf("err %v; want ErrForbidden", err)
			}
			got := describeMDEError(err)
			other := map[string]string{"Machine.Isolate": "Machine.Read.All", "Machine.Read.All": "Machine.Isolate"}[tc.want]
			if !strings.Contains(got, "lacks the "+tc.want+" application permission") || strings.Contains(got, other) {
				t.Fatalf("describeMDEError = %q; want it to name %s only", got, tc.want)
			}
		})
	}
	t.Run("not an MDE call", func(t *testing.T) {
		if got := permissionFor(defender.ErrForbidden); got != "Machine.Isolate or Machine.Read.All" {
			t.Fatalf("permissionFor(bare kind) = %q", got)
		}
	})
}
