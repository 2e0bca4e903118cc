package defender

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// Token checks that an access token for the MDE API can be had (from
// MSAL's cache or Azure AD). It returns nil or an *APIError of kind
// ErrUnauthorized (credentials or tenant refused: check AZURE_*) or
// ErrUnavailable (Azure AD unreachable or failing).
func (c *Client) Token(ctx context.Context) error {
	_, err := c.token(ctx)
	return err
}

// token returns a bearer token. AcquireTokenByCredential consults MSAL's
// app-token cache first (MSAL Go ≥1.5; AcquireTokenSilent would need an
// account, which app tokens do not have) and refreshes ahead of expiry.
func (c *Client) token(ctx context.Context) (string, error) {
	res, err := c.msal.AcquireTokenByCredential(ctx, c.scopes)
	if err != nil {
		return "", c.tokenError(ctx, err)
	}
	return res.AccessToken, nil
}

// aadErrorBody is Azure AD's OAuth error response.
type aadErrorBody struct {
	Error         string  `json:"error"`
	Description   string  `json:"error_description"`
	ErrorCodes    []int64 `json:"error_codes"`
	CorrelationID string  `json:"correlation_id"`
}

var (
	aadstsRe    = regexp.MustCompile(`AADSTS\d+`)
	oauthCodeRe = regexp.MustCompile(`^[a-z_]{1,64}$`) // e.g. invalid_client
)

// tokenError turns an MSAL failure into an APIError that is safe to show:
// MSAL errors embed the authority's whole response body, which may echo
// form fields, so only the OAuth error code, the AADSTS number and the
// correlation id are kept from a response.
func (c *Client) tokenError(ctx context.Context, err error) error {
	const op = OpToken
	const hint = "check the AZURE_* settings (tenant id, client id, client secret or certificate) and that the app has the Machine.Isolate and Machine.Read.All application roles with admin consent"
	e := &APIError{Op: op, Kind: ErrUnauthorized}
	var ce msalerrors.CallErr
	switch {
	case errors.As(err, &ce) && ce.Resp != nil:
		e.Status = ce.Resp.StatusCode
		var body aadErrorBody
		if ce.Resp.Body != nil {
			raw, _ := io.ReadAll(io.LimitReader(ce.Resp.Body, 64<<10))
			_ = json.Unmarshal(raw, &body)
		}
		if oauthCodeRe.MatchString(body.Error) {
			e.Code = body.Error
		}
		e.Target = truncate(body.CorrelationID, 64)
		detail := ""
		if m := aadstsRe.FindString(body.Description); m != "" {
			detail = " (" + m + ")"
		} else if len(body.ErrorCodes) > 0 {
			detail = fmt.Sprintf(" (AADSTS%d)", body.ErrorCodes[0])
		}
		if e.Status >= 500 || e.Status == http.StatusTooManyRequests {
			e.Kind = ErrUnavailable
			e.Message = "Azure AD is failing" + detail + "; try again later"
		} else {
			e.Message = "Azure AD refused the token request" + detail + "; " + hint
		}
	case ctx.Err() != nil:
		e.Kind = ErrUnavailable
		e.Message = "no token before the deadline"
		return withCause(e, ctx.Err())
	case isNetError(err):
		e.Kind = ErrUnavailable
		e.Message = "cannot reach Azure AD: " + c.scrub(firstLine(err.Error()))
	default:
		e.Message = c.scrub(firstLine(err.Error())) + "; " + hint
	}
	return e
}

func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue)
}

// firstLine drops everything after the first newline: MSAL puts response
// bodies there.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(strings.TrimSpace(s), ":")
}

// scrub makes foreign error text safe to show: no secret, no URL query,
// no JWT, bounded length.
func (c *Client) scrub(s string) string {
	if c.secret != "" {
		s = strings.ReplaceAll(s, c.secret, "[redacted]")
		// Form bodies carry the secret URL-encoded.
		if q := url.QueryEscape(c.secret); q != c.secret {
			s = strings.ReplaceAll(s, q, "[redacted]")
		}
	}
	return truncate(redact(s), 300)
}

// freshToken returns a token other than rejected, which MDE just answered
// 401 to. MSAL would hand the rejected token out again until 5 minutes
// before the expiry Azure AD stated, so unless another call has already
// replaced it in the cache, the token is asked for with a claims request:
// MSAL skips its cache for any request with claims (and stores the new
// token, so later calls get it too). The claims ask for a token issued no
// earlier than now, as a continuous-access-evaluation challenge would;
// Azure AD issues a new one.
func (c *Client) freshToken(ctx context.Context, rejected string) (string, error) {
	if tok, err := c.token(ctx); err != nil || tok != rejected {
		return tok, err
	}
	claims := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, c.now().Unix())
	res, err := c.msal.AcquireTokenByCredential(ctx, c.scopes, confidential.WithClaims(claims))
	if err != nil {
		return "", c.tokenError(ctx, err)
	}
	return res.AccessToken, nil
}

// Application permissions (app roles of the WindowsDefenderATP API) the
// client's calls need.
const (
	RoleIsolate = "Machine.Isolate" // isolate, unisolate, cancel
	RoleRead    = "Machine.Read.All"
	// RoleReadWrite also allows every read.
	RoleReadWrite = "Machine.ReadWrite.All"
)

// ErrRolesUnreadable: the access token is not a JWT whose payload this
// client can read, so its roles are unknown (Azure AD promises clients
// nothing about the format of access tokens).
var ErrRolesUnreadable = errors.New("cannot read roles from the access token")

// TokenRoles gets a token as Token does and returns its "roles" claim (the
// application permissions Azure AD granted the app), for `bot check`'s
// advice. The token itself never leaves the client. Errors are Token's, or
// ErrRolesUnreadable.
func (c *Client) TokenRoles(ctx context.Context) ([]string, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	return tokenRoles(tok)
}

// tokenRoles decodes the JWT payload WITHOUT verifying the signature: the
// roles only feed advice to the operator and never decide anything (MDE
// checks the token itself). Errors never quote the token.
func tokenRoles(tok string) ([]string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a JWT", ErrRolesUnreadable)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("%w: the payload is not base64url", ErrRolesUnreadable)
	}
	var claims struct {
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("%w: the payload is not a JSON object with a roles list", ErrRolesUnreadable)
	}
	return claims.Roles, nil
}

// MissingRoles names the application permissions the client needs that
// roles lacks: RoleIsolate, and RoleRead unless RoleReadWrite is there.
func MissingRoles(roles []string) []string {
	has := func(want string) bool {
		for _, r := range roles {
			if strings.EqualFold(r, want) {
				return true
			}
		}
		return false
	}
	var missing []string
	if !has(RoleIsolate) {
		missing = append(missing, RoleIsolate)
	}
	if !has(RoleRead) && !has(RoleReadWrite) {
		missing = append(missing, RoleRead)
	}
	return missing
}
