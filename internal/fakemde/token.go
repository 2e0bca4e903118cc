package fakemde

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/soc/isolate-bot/defender"
)

// TokenOptions say what the fake authority issues after SetTokens. The
// zero value issues distinct JWTs with both roles that never expire.
type TokenOptions struct {
	// Lifetime is how long the fake API accepts a token after issuing it,
	// on the fake's clock; 0: forever. An expired token gets 401.
	Lifetime time.Duration
	// ExpiresIn is the lifetime the token response states, by which MSAL
	// caches the token (it hands a token out until 5 minutes before then);
	// 0: Lifetime, or an hour. Longer than Lifetime, it makes MSAL hold a
	// token the API already refuses, as after a long queue wait.
	ExpiresIn time.Duration
	// Roles is the token's roles claim; nil: Machine.Isolate and
	// Machine.Read.All. An empty, non-nil slice gives no roles at all.
	Roles []string
	// Opaque issues tokens that are not JWTs.
	Opaque bool
}

// tokenState is the authority's side: the options in force and every
// token issued with its expiry (zero: never).
type tokenState struct {
	opts   *TokenOptions // nil: issue the constant Token
	issued map[string]time.Time
	order  []string
}

// SetTokens changes what the authority issues from now on; tokens already
// issued keep their expiry.
func (s *Server) SetTokens(o TokenOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tok.opts = &o
}

// IssuedTokens returns every token issued so far, oldest first (Token
// until SetTokens is called), for tests that grep output for them.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tok.order...)
}

// issueToken answers a token request that passed the credential check.
func (s *Server) issueToken(w http.ResponseWriter) {
	s.mu.Lock()
	now := s.now()
	tok, expiresIn, exp := Token, time.Hour, time.Time{}
	if o := s.tok.opts; o != nil {
		n := len(s.tok.order) + 1
		tok = mintToken(*o, n, now)
		if o.Lifetime > 0 {
			exp = now.Add(o.Lifetime)
			expiresIn = o.Lifetime
		}
		if o.ExpiresIn > 0 {
			expiresIn = o.ExpiresIn
		}
	}
	if _, seen := s.tok.issued[tok]; !seen {
		s.tok.order = append(s.tok.order, tok)
	}
	s.tok.issued[tok] = exp
	s.mu.Unlock()
	secs := max(int(expiresIn/time.Second), 1)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": secs, "ext_expires_in": secs})
}

// mintToken makes the n-th token: a JWT shaped like Azure AD's (unsigned:
// nothing verifies it but this fake), or an opaque string.
func mintToken(o TokenOptions, n int, now time.Time) string {
	if o.Opaque {
		return fmt.Sprintf("opaque-fake-mde-token-%d", n)
	}
	roles := o.Roles
	if roles == nil {
		roles = []string{defender.RoleIsolate, defender.RoleRead}
	}
	claims := map[string]any{
		"aud": "https://api.securitycenter.microsoft.com", "iss": "https://sts.windows.net/" + TenantID + "/",
		"appid": ClientID, "tid": TenantID, "iat": now.Unix(), "nbf": now.Unix(), "roles": roles,
		"uti": fmt.Sprintf("fake-%d", n),
	}
	if o.Lifetime > 0 {
		claims["exp"] = now.Add(o.Lifetime).Unix()
	}
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf("fake-signature-%d", n)))
}

// checkToken reports why the API refuses an Authorization header, or "".
func (s *Server) checkToken(header string) string {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, known := s.tok.issued[tok]
	switch {
	case !ok || !known:
		return "missing or wrong bearer token"
	case !exp.IsZero() && !s.now().Before(exp):
		return "the access token has expired"
	}
	return ""
}
