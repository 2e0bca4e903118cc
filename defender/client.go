package defender

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/rs/zerolog"
)

// Gate is the shared rate limiter as the client needs it. Admit blocks until
// a call may be sent or returns an error (then no call is made: fail closed).
type Gate interface {
	Admit(ctx context.Context, budget string) error
	Throttled(ctx context.Context, budget string, retryAfter time.Duration)
}

// Slot is a rate-limit admission the caller already holds for a write call
// (a reserved slot, e.g. *ratelimit.Ticket). Wait returns when the call may
// be sent, or an error: then nothing is sent. A nil Slot makes the client
// admit the call itself through its Gate.
type Slot interface {
	Wait(ctx context.Context) error
}

// MaxResponseBytes bounds how much of an MDE response is read.
const MaxResponseBytes = 4 << 20

// Config configures a Client. Every field is required (exactly one of
// ClientSecret or CertificatePEM) except Scope, HTTPClient, Gate, Logger, Now
// and Jitter; internal/app passes internal/config's values, the client keeps
// no defaults of its own.
type Config struct {
	// APIURL is the MDE API base, e.g. https://api.securitycenter.microsoft.com,
	// a geo host (https://eu.api.security.microsoft.com) or a Gov host
	// (https://api-gov.securitycenter.microsoft.us). A trailing slash is fine.
	APIURL string
	// Scope defaults to ScopeFor(APIURL).
	Scope string
	// AuthorityHost is the Entra login host, e.g.
	// https://login.microsoftonline.com; the authority is AuthorityHost +
	// "/" + TenantID.
	AuthorityHost  string
	TenantID       string
	ClientID       string
	ClientSecret   string
	CertificatePEM []byte // PEM holding the certificate and its unencrypted private key

	// HTTPClient is used for both Azure AD and MDE; nil means a default client.
	HTTPClient *http.Client
	UserAgent  string // e.g. "isolate-bot/1.2.3"
	Gate       Gate   // optional shared rate limiter
	Logger     zerolog.Logger
	Now        func() time.Time // nil: time.Now

	MaxGetAttempts    int           // GET attempts including the first
	BaseBackoff       time.Duration // first GET retry delay before jitter
	MaxBackoff        time.Duration // cap on one retry delay
	MaxRetryAfterWait time.Duration // longest 429 Retry-After a GET waits out
	AttemptTimeout    time.Duration // per HTTP attempt, within ctx (MDE_CALL_TIMEOUT)
	// NotFoundRetryDelay is the pause before a GET answered 404 is sent
	// once more (MDE answers spurious 404s for existing devices).
	NotFoundRetryDelay time.Duration
	// Jitter returns a number in [0,1); a retry waits between half and all
	// of the exponential delay. nil: math/rand/v2.Float64.
	Jitter func() float64
}

// Client calls the MDE API. It is safe for concurrent use.
type Client struct {
	api        string // scheme://host[/path] without trailing slash
	scopes     []string
	msal       confidential.Client
	http       *http.Client
	userAgent  string
	gate       Gate
	log        zerolog.Logger
	now        func() time.Time
	secret     string // only to scrub it from error text
	maxGet     int
	base, cap  time.Duration
	maxRAWait  time.Duration
	attemptTTL time.Duration
	notFound   time.Duration // see Config.NotFoundRetryDelay
	jitter     func() float64
	sleep      func(ctx context.Context, d time.Duration) error // seam for tests
}

// publicClouds are Azure AD hosts MSAL knows; any other authority host (a
// sovereign deployment, a test fake) must skip instance discovery, which
// would otherwise ask login.microsoftonline.com about it.
var publicClouds = map[string]bool{
	"login.microsoftonline.com": true,
	"login.microsoftonline.us":  true,
	"login.chinacloudapi.cn":    true,
	"login.microsoftonline.de":  true,
}

// New validates cfg and builds a Client. It makes no network call; use
// Token to check the credentials.
func New(cfg Config) (*Client, error) {
	var problems []error
	api, err := parseBaseURL(cfg.APIURL)
	if err != nil {
		problems = append(problems, fmt.Errorf("MDE API URL: %w", err))
	}
	authHost := cfg.AuthorityHost
	auth, err := url.Parse(strings.TrimRight(authHost, "/"))
	if err != nil || auth.Scheme != "https" || auth.Host == "" || (auth.Path != "" && auth.Path != "/") || auth.RawQuery != "" || auth.User != nil {
		problems = append(problems, fmt.Errorf("authority host %q must be https://host with no path", authHost))
	}
	problems = append(problems, cfg.missing()...)
	if !tenantRe.MatchString(cfg.TenantID) {
		problems = append(problems, errors.New("tenant id is missing or not a tenant GUID/domain"))
	}
	if cfg.ClientID == "" {
		problems = append(problems, errors.New("client id is missing"))
	}
	switch {
	case cfg.ClientSecret == "" && len(cfg.CertificatePEM) == 0:
		problems = append(problems, errors.New("set a client secret or a client certificate"))
	case cfg.ClientSecret != "" && len(cfg.CertificatePEM) != 0:
		problems = append(problems, errors.New("set a client secret or a client certificate, not both"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("defender config: %w", errors.Join(problems...))
	}

	var cred confidential.Credential
	if cfg.ClientSecret != "" {
		cred, err = confidential.NewCredFromSecret(cfg.ClientSecret)
	} else {
		certs, key, perr := confidential.CertFromPEM(cfg.CertificatePEM, "")
		if perr != nil {
			// The PEM parser's messages name block types, never key bytes.
			return nil, fmt.Errorf("defender config: client certificate PEM: %w", perr)
		}
		cred, err = confidential.NewCredFromCert(certs, key)
	}
	if err != nil {
		return nil, fmt.Errorf("defender config: credential: %w", err)
	}

	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	opts := []confidential.Option{confidential.WithHTTPClient(hc)}
	if !publicClouds[strings.ToLower(auth.Hostname())] {
		opts = append(opts, confidential.WithInstanceDiscovery(false))
	}
	authority := auth.Scheme + "://" + auth.Host + "/" + cfg.TenantID
	mc, err := confidential.New(authority, cfg.ClientID, cred, opts...)
	if err != nil {
		return nil, fmt.Errorf("defender config: MSAL client for %s: %w", authority, err)
	}

	// MDE never redirects; following one would resend a POST (and the
	// bearer token) somewhere unexpected.
	apiHTTP := *hc
	apiHTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	scope := cfg.Scope
	if scope == "" {
		scope = ScopeFor(api)
	}
	c := &Client{
		api:        strings.TrimRight(api.String(), "/"),
		scopes:     []string{scope},
		msal:       mc,
		http:       &apiHTTP,
		userAgent:  cfg.UserAgent,
		gate:       cfg.Gate,
		log:        cfg.Logger,
		now:        cfg.Now,
		secret:     cfg.ClientSecret,
		maxGet:     cfg.MaxGetAttempts,
		base:       cfg.BaseBackoff,
		cap:        cfg.MaxBackoff,
		maxRAWait:  cfg.MaxRetryAfterWait,
		attemptTTL: cfg.AttemptTimeout,
		notFound:   cfg.NotFoundRetryDelay,
		jitter:     cfg.Jitter,
		sleep:      sleepCtx,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.jitter == nil {
		c.jitter = rand.Float64
	}
	return c, nil
}

// missing names the tuning values left zero: the client keeps no defaults
// of its own (internal/app passes internal/config's values).
func (cfg Config) missing() []error {
	var errs []error
	for _, f := range []struct {
		name string
		zero bool
	}{
		{"UserAgent", cfg.UserAgent == ""},
		{"MaxGetAttempts", cfg.MaxGetAttempts <= 0},
		{"BaseBackoff", cfg.BaseBackoff <= 0},
		{"MaxBackoff", cfg.MaxBackoff <= 0},
		{"MaxRetryAfterWait", cfg.MaxRetryAfterWait <= 0},
		{"NotFoundRetryDelay", cfg.NotFoundRetryDelay <= 0},
		{"AttemptTimeout", cfg.AttemptTimeout <= 0},
	} {
		if f.zero {
			errs = append(errs, fmt.Errorf("%s not set; internal/app passes internal/config's value", f.name))
		}
	}
	return errs
}

// tenantRe accepts a tenant GUID or a domain such as contoso.onmicrosoft.com;
// it keeps '/', '?' and the like out of the authority URL.
var tenantRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$`)

func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("missing")
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", raw)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q must be scheme://host with no query", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		// Plain HTTP only to this machine (a local fake): a bearer token
		// must never cross a network in clear.
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("%q must use https", raw)
		}
	default:
		return nil, fmt.Errorf("%q must use https", raw)
	}
	return u, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logger is the caller's request logger (request id, user, machine) when the
// context carries one, else the client's own.
func (c *Client) logger(ctx context.Context) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &c.log
}
