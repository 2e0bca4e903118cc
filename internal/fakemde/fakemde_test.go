package fakemde_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/testclock"
)

func newClient(t *testing.T, f *fakemde.Server) *defender.Client {
	t.Helper()
	c, err := defender.New(defender.Config{
		APIURL: f.URL(), AuthorityHost: f.URL(), TenantID: fakemde.TenantID,
		ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret,
		HTTPClient: f.HTTPClient(), UserAgent: "isolate-bot/test", MaxGetAttempts: 1,
		BaseBackoff: config.DefaultMDEBaseBackoff, MaxBackoff: config.DefaultMDEMaxBackoff,
		MaxRetryAfterWait: config.DefaultMDEMaxRetryAfterWait, AttemptTimeout: config.DefaultMDECallTimeout,
		NotFoundRetryDelay: config.DefaultMDENotFoundRetryDelay,
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
	_, err := c.Isolate(ctx, nil, defender.SimWeb02, defender.Full, "x")
	var ae *defender.APIError
	if !errors.As(err, &ae) || !errors.Is(err, defender.ErrThrottled) || ae.RetryAfter != 7*time.Second {
		t.Fatalf("429: %v", err)
	}

	f.Hang(fakemde.OpIsolate, 2*time.Second)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.Isolate(cctx, nil, defender.SimWeb02, defender.Full, "timed out [isolate-bot r-2]")
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

// getToken asks the fake authority for a token as MSAL would.
func getToken(t *testing.T, f *fakemde.Server) (token string, expiresIn int) {
	t.Helper()
	resp, err := f.HTTPClient().PostForm(f.URL()+"/"+fakemde.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {fakemde.ClientID}, "client_secret": {fakemde.ClientSecret},
		"scope": {"https://api.securitycenter.microsoft.com/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: HTTP %d, %v", resp.StatusCode, err)
	}
	return body.AccessToken, body.ExpiresIn
}

// getMachine reads a machine with token and returns the status.
func getMachine(t *testing.T, f *fakemde.Server, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/api/machines/"+defender.SimWeb01, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTokenLifetime: after SetTokens, every token is new, the API accepts
// it for Lifetime on the fake's clock and 401s it afterwards, while the
// token response states ExpiresIn.
func TestTokenLifetime(t *testing.T) {
	clock := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	f := fakemde.New(t, clock.Now)
	if tok, exp := getToken(t, f); tok != fakemde.Token || exp != 3600 || getMachine(t, f, tok) != http.StatusOK {
		t.Fatalf("default token %.20q… expires_in %d; want Token, an hour, accepted", tok, exp)
	}
	f.SetTokens(fakemde.TokenOptions{Lifetime: time.Second, ExpiresIn: time.Hour})
	tok1, exp := getToken(t, f)
	tok2, _ := getToken(t, f)
	if tok1 == tok2 || tok1 == fakemde.Token || exp != 3600 {
		t.Fatalf("tokens not distinct or expires_in %d, want 3600", exp)
	}
	if got := getMachine(t, f, tok1); got != http.StatusOK {
		t.Fatalf("fresh token: HTTP %d", got)
	}
	clock.Advance(time.Second)
	if got := getMachine(t, f, tok1); got != http.StatusUnauthorized {
		t.Fatalf("expired token: HTTP %d, want 401", got)
	}
	if got := getMachine(t, f, fakemde.Token); got != http.StatusOK {
		t.Errorf("the token issued before SetTokens: HTTP %d, want it still accepted", got)
	}
	if got := f.IssuedTokens(); len(got) != 3 || got[0] != fakemde.Token || got[1] != tok1 || got[2] != tok2 {
		t.Errorf("IssuedTokens has %d tokens, want Token and the two new ones", len(got))
	}
}

// TestTokenRolesClaim: the roles claim is what SetTokens says, as the real
// client reads it; an opaque token is not a JWT.
func TestTokenRolesClaim(t *testing.T) {
	tests := []struct {
		name string
		opts *fakemde.TokenOptions
		want []string
	}{
		{"default Token", nil, []string{defender.RoleIsolate, defender.RoleRead}},
		{"default roles", &fakemde.TokenOptions{}, []string{defender.RoleIsolate, defender.RoleRead}},
		{"read only", &fakemde.TokenOptions{Roles: []string{defender.RoleRead}}, []string{defender.RoleRead}},
		{"none", &fakemde.TokenOptions{Roles: []string{}}, nil},
		{"opaque", &fakemde.TokenOptions{Opaque: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakemde.New(t, nil)
			if tt.opts != nil {
				f.SetTokens(*tt.opts)
			}
			roles, err := newClient(t, f).TokenRoles(context.Background())
			if tt.opts != nil && tt.opts.Opaque {
				if !errors.Is(err, defender.ErrRolesUnreadable) {
					t.Fatalf("opaque token: %v, want ErrRolesUnreadable", err)
				}
				return
			}
			if err != nil || !slices.Equal(roles, tt.want) {
				t.Fatalf("roles = %v, %v; want %v", roles, err, tt.want)
			}
		})
	}
}
