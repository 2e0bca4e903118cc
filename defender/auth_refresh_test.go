package defender

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// numberedTokens issues testToken first, then JWT-shaped tokens that differ
// from it (and still contain it, so the secret checks catch them too).
func numberedTokens(n int64) string {
	if n == 1 {
		return testToken
	}
	return fmt.Sprintf("%s%d", testToken, n)
}

// readySlot is a caller's slot that admits at once.
type readySlot struct{ waits atomic.Int32 }

func (s *readySlot) Wait(context.Context) error { s.waits.Add(1); return nil }

// TestUnauthorizedResendsWithFreshToken: when MDE answers 401 (a token that
// MSAL still holds as valid, e.g. one that expired while the call queued),
// the client asks Azure AD for a new token past MSAL's cache, has the resend
// admitted by the Gate (the caller's slot is spent), and sends once more;
// a second 401 fails as ErrUnauthorized after exactly two requests; a
// refused resend sends nothing more and asks for no token.
func TestUnauthorizedResendsWithFreshToken(t *testing.T) {
	ctx := context.Background()
	isolate := func(c *Client, s Slot) error { _, err := c.Isolate(ctx, s, machineA, Full, "c"); return err }
	read := func(c *Client, _ Slot) error { _, err := c.Machine(ctx, machineA); return err }
	tests := []struct {
		name       string
		call       func(c *Client, s Slot) error
		slot       bool
		always401  bool  // MDE refuses the fresh token too
		gateErr    error // the Gate refuses every Admit
		wantKind   error // nil: success
		wantMDE    int   // requests MDE receives
		wantTokens int64 // token requests Azure AD receives
		wantAdmits int   // Gate admissions
	}{
		{name: "write with a slot", call: isolate, slot: true, wantMDE: 2, wantTokens: 2, wantAdmits: 1},
		{name: "write without a slot", call: isolate, wantMDE: 2, wantTokens: 2, wantAdmits: 2},
		{name: "read", call: read, wantMDE: 2, wantTokens: 2, wantAdmits: 2},
		{name: "second 401 fails", call: isolate, slot: true, always401: true, wantKind: ErrUnauthorized, wantMDE: 2, wantTokens: 2, wantAdmits: 1},
		{name: "read: second 401 fails, no GET retry", call: read, always401: true, wantKind: ErrUnauthorized, wantMDE: 2, wantTokens: 2, wantAdmits: 2},
		{name: "resend refused by the Gate", call: isolate, slot: true, gateErr: errors.New("budget full"), wantKind: ErrUnavailable, wantMDE: 1, wantTokens: 1, wantAdmits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := &countingGate{err: tt.gateErr}
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 || tt.always401 {
					w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
					reply(w, http.StatusUnauthorized, mdeError("Unauthorized", "token expired", "corr-401"))
					return
				}
				reply(w, http.StatusCreated, actionJSON(actionA, StatusPending, "2026-03-01T12:00:00Z"))
			}, func(c *Config) { c.Gate = gate })
			e.auth.setIssue(numberedTokens)
			var slot Slot
			if tt.slot {
				slot = &readySlot{}
			}
			err := tt.call(e.client, slot)

			switch {
			case tt.wantKind == nil && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tt.wantKind != nil && !errors.Is(err, tt.wantKind):
				t.Fatalf("err = %v, want %v", err, tt.wantKind)
			}
			if tt.gateErr != nil && !errors.Is(err, tt.gateErr) {
				t.Errorf("err = %v, want the Gate's refusal", err)
			}
			var ae *APIError
			if tt.always401 && (!errors.As(err, &ae) || ae.Status != http.StatusUnauthorized) {
				t.Errorf("err = %v, want MDE's 401", err)
			}
			reqs := e.mde.requests()
			admits, _, _ := gate.snapshot()
			if len(reqs) != tt.wantMDE || e.auth.tokens.Load() != tt.wantTokens || len(admits) != tt.wantAdmits {
				t.Fatalf("%d MDE requests, %d token requests, Gate admits %v; want %d, %d, %d admits",
					len(reqs), e.auth.tokens.Load(), admits, tt.wantMDE, tt.wantTokens, tt.wantAdmits)
			}
			if tt.wantMDE == 2 {
				first, second := reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization")
				if first != "Bearer "+numberedTokens(1) || second != "Bearer "+numberedTokens(2) {
					t.Errorf("resend carried %.30q… after %.30q…; want the fresh token, not MSAL's cached one", second, first)
				}
				if string(reqs[0].Body) != string(reqs[1].Body) || reqs[0].Path != reqs[1].Path {
					t.Errorf("the resend differs from the first request")
				}
				// The cache was bypassed with a claims request.
				if forms := e.auth.allForms(); len(forms[1]["claims"]) != 1 || len(forms[0]["claims"]) != 0 {
					t.Errorf("token requests' claims: %v then %v; want none, then a claims request", forms[0]["claims"], forms[1]["claims"])
				}
			}
			if err != nil {
				mustNotContainSecrets(t, "error", err.Error())
			}
			mustNotContainSecrets(t, "logs", e.logs.String())
		})
	}
}

// TestFreshTokenUsesCacheWhenAlreadyReplaced: when another call already
// replaced the rejected token in MSAL's cache, no claims request is made.
func TestFreshTokenUsesCacheWhenAlreadyReplaced(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.auth.setIssue(numberedTokens)
	tok, err := e.client.freshToken(context.Background(), "an-older-token")
	if err != nil || tok != testToken {
		t.Fatalf("freshToken = %.20q…, %v; want the cached token", tok, err)
	}
	if n := e.auth.tokens.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

// jwt builds a JWT-shaped token with payload as its claims.
func jwt(payload string) string {
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
}

// TestTokenRoles reads the roles claim of the token the client gets from
// Azure AD, names the missing permissions, and says clearly (without
// quoting the token) when the token cannot be read.
func TestTokenRoles(t *testing.T) {
	tests := []struct {
		name        string
		token       string
		wantRoles   []string
		wantMissing []string
		unreadable  bool
	}{
		{"both", jwt(`{"roles":["Machine.Isolate","Machine.Read.All"]}`), []string{"Machine.Isolate", "Machine.Read.All"}, nil, false},
		{"read-write covers read", jwt(`{"roles":["Machine.ReadWrite.All","Machine.Isolate"]}`), []string{"Machine.ReadWrite.All", "Machine.Isolate"}, nil, false},
		{"isolate missing", jwt(`{"roles":["Machine.Read.All"]}`), []string{"Machine.Read.All"}, []string{RoleIsolate}, false},
		{"no roles claim", jwt(`{"aud":"https://api.securitycenter.microsoft.com"}`), nil, []string{RoleIsolate, RoleRead}, false},
		{"opaque token", "opaque-s3cr3t-token-value", nil, nil, true},
		{"bad base64", "eyJhbGciOiJub25lIn0.!!!s3cr3t!!!.c2ln", nil, nil, true},
		{"payload not an object", jwt(`["s3cr3t"]`), nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.auth.setIssue(func(int64) string { return tt.token })
			roles, err := e.client.TokenRoles(context.Background())
			if tt.unreadable {
				if !errors.Is(err, ErrRolesUnreadable) {
					t.Fatalf("err = %v, want ErrRolesUnreadable", err)
				}
				if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), tt.token) {
					t.Errorf("error quotes the token: %v", err)
				}
				return
			}
			if err != nil || !slices.Equal(roles, tt.wantRoles) {
				t.Fatalf("TokenRoles = %v, %v; want %v", roles, err, tt.wantRoles)
			}
			if got := MissingRoles(roles); !slices.Equal(got, tt.wantMissing) {
				t.Errorf("MissingRoles = %v, want %v", got, tt.wantMissing)
			}
		})
	}
}
