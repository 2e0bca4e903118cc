package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
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

// call is one MDE operation.
type call struct {
	op     string // for errors, e.g. "isolate machine 7b1f…"
	method string
	path   string // already escaped
	query  string // raw query, already encoded
	body   []byte // POST only
	budget string
	slot   Slot // admission held by the caller; nil: ask the Gate
	// final404: a 404 is this look-up's expected "no match", so it is not
	// read again (see Config.NotFoundRetryDelay).
	final404 bool
}

// do runs c (retrying GETs) and decodes a 2xx body into out.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	isPost := cl.method == http.MethodPost
	retried404 := false
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, cl, out, attempt)
		if err == nil {
			return nil
		}
		if !isPost && !cl.final404 && !retried404 && errors.Is(err, ErrNotFound) {
			retried404 = true // once, on top of the GET retries
			if again, perr := c.pauseAfterNotFound(ctx, cl.op, err); !again {
				return perr
			}
			attempt--
			continue
		}
		if isPost || attempt >= c.maxGet || ctx.Err() != nil {
			return err
		}
		wait, ok := c.retryDelay(ctx, attempt, err)
		if !ok {
			return err
		}
		c.logger(ctx).Warn().Str("op", cl.op).Int("attempt", attempt).Dur("wait", wait).Str("error", err.Error()).Msg("MDE GET failed; retrying")
		if serr := c.sleep(ctx, wait); serr != nil {
			return withCause(asAPIError(err), serr)
		}
	}
}

func asAPIError(err error) *APIError {
	var e *APIError
	if errors.As(err, &e) {
		return e
	}
	return &APIError{Op: "MDE call", Kind: ErrUnavailable, Message: err.Error()}
}

// retryDelay decides whether a failed GET is retried and after how long.
// Only unavailability (5xx, transport failure, attempt timeout) and 429 are
// retried; a 429 never before its Retry-After, and not at all when the
// wait is over MaxRetryAfterWait or past ctx's deadline.
func (c *Client) retryDelay(ctx context.Context, attempt int, err error) (time.Duration, bool) {
	var e *APIError
	if !errors.As(err, &e) {
		return 0, false
	}
	if e.Status >= 200 && e.Status <= 299 {
		return 0, false // MDE answered; an oversized or unreadable answer would come again
	}
	var wait time.Duration
	switch {
	case errors.Is(e.Kind, ErrThrottled) && e.RetryAfter > 0:
		if e.RetryAfter > c.maxRAWait {
			return 0, false
		}
		wait = e.RetryAfter
	case errors.Is(e.Kind, ErrThrottled), errors.Is(e.Kind, ErrUnavailable):
		if errors.Is(err, errGateRefused) {
			return 0, false // the limiter said no; it already waited as long as it could
		}
		d := c.base
		for i := 1; i < attempt && d < c.cap; i++ {
			d *= 2
		}
		d = min(d, c.cap)
		j := min(max(c.jitter(), 0), 1)
		wait = d/2 + time.Duration(j*float64(d/2))
	default:
		return 0, false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		return 0, false // sleeping would only end in ctx's error
	}
	return wait, true
}

// errGateRefused marks a rate-limiter refusal so it is not retried here.
var errGateRefused = errors.New("rate limiter refused the call")

// gateRefusal wraps the Gate's error: errors.Is finds both it and
// errGateRefused.
type gateRefusal struct{ err error }

func (g gateRefusal) Error() string   { return "rate limiter: " + g.err.Error() }
func (g gateRefusal) Unwrap() []error { return []error{errGateRefused, g.err} }

// refused is the error for a call the Gate did not admit.
func refused(op string, gateErr error) error {
	return withCause(&APIError{Op: op, Kind: ErrUnavailable, Message: "not sent to MDE"}, gateRefusal{gateErr})
}

// attempt is one admitted HTTP request, sent once more with a fresh token
// if MDE answers 401.
func (c *Client) attempt(ctx context.Context, cl call, out any, n int) error {
	// Admission first: a queued call may wait long, and the token must be
	// fresh when the request leaves.
	if err := c.admit(ctx, cl); err != nil {
		return refused(cl.op, err)
	}
	tok, err := c.token(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", cl.op, err)
	}
	err = c.send(ctx, cl, tok, out, n)
	if !rejectedToken(err) {
		return err
	}
	// A 401 means MDE did nothing, so even a POST may go again; it counted
	// against MDE's budget like any answer, so the resend is admitted anew,
	// by the Gate: the caller's slot is spent.
	c.logger(ctx).Warn().Str("op", cl.op).Msg("MDE refused the access token (HTTP 401); sending once more with a fresh token")
	if c.gate != nil {
		if err := c.gate.Admit(ctx, cl.budget); err != nil {
			return refused(cl.op, err)
		}
	}
	if tok, err = c.freshToken(ctx, tok); err != nil {
		return fmt.Errorf("%s: %w", cl.op, err)
	}
	return c.send(ctx, cl, tok, out, n)
}

// rejectedToken reports whether err is MDE's 401.
func rejectedToken(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized && errors.Is(e.Kind, ErrUnauthorized)
}

// send makes one HTTP request with tok: send, read, map.
func (c *Client) send(ctx context.Context, cl call, tok string, out any, n int) error {
	isPost := cl.method == http.MethodPost
	actx, cancel := context.WithTimeout(ctx, c.attemptTTL)
	defer cancel()
	var sent atomic.Bool // set once the request may have reached MDE
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteHeaders: func() { sent.Store(true) },
	})
	req, err := c.request(actx, cl, tok)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		kind := ErrUnavailable
		msg := "no response from MDE"
		if isPost && sent.Load() {
			kind = ErrOutcomeUnknown
			msg = "no response from MDE after the request was sent; list the machine's actions before trying again"
		}
		// Keep the cause (for errors.Is on context errors) but not the
		// *url.Error around it, whose text repeats the URL.
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		c.logger(ctx).Debug().Str("op", cl.op).Str("method", cl.method).Str("path", cl.path).Int("attempt", n).
			Dur("took", time.Since(start)).Str("error", cause.Error()).Msg("MDE request failed")
		return withCause(&APIError{Op: cl.op, Kind: kind, Message: msg}, cause)
	}
	defer resp.Body.Close()
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	c.logger(ctx).Debug().Str("op", cl.op).Str("method", cl.method).Str("path", cl.path).Int("attempt", n).
		Int("status", resp.StatusCode).Dur("took", time.Since(start)).Msg("MDE request")
	return c.answer(ctx, cl, resp, raw, rerr, out)
}

// request builds cl's HTTP request carrying tok.
func (c *Client) request(ctx context.Context, cl call, tok string) (*http.Request, error) {
	target := c.api + cl.path
	if cl.query != "" {
		target += "?" + cl.query
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return nil, &APIError{Op: cl.op, Kind: ErrBadRequest, Message: "cannot build the request"}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// answer maps MDE's response (raw, read with rerr) and decodes a 2xx body
// into out.
func (c *Client) answer(ctx context.Context, cl call, resp *http.Response, raw []byte, rerr error, out any) error {
	isPost := cl.method == http.MethodPost
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := mapStatus(cl.op, isPost, resp.StatusCode, resp.Header, raw, c.now())
		if resp.StatusCode == http.StatusTooManyRequests && c.gate != nil {
			// Tell the other replicas even if the caller's ctx just ended.
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			c.gate.Throttled(tctx, cl.budget, e.RetryAfter)
			cancel()
		}
		return e
	}
	// 2xx: the call happened. A body we cannot read means we do not know
	// what MDE created.
	bad := ErrUnavailable
	if isPost {
		bad = ErrOutcomeUnknown
	}
	// An answer cut short by the caller's deadline (net/http may hand over
	// an empty 2xx body as the request is cancelled) is the deadline's
	// doing, and says so: callers match context.DeadlineExceeded.
	cut := func(err error) error {
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		return err
	}
	switch {
	case rerr != nil:
		return withCause(&APIError{Op: cl.op, Status: resp.StatusCode, Kind: bad, Message: "reading the response failed"}, cut(rerr))
	case len(raw) > MaxResponseBytes:
		return &APIError{Op: cl.op, Status: resp.StatusCode, Kind: bad, Message: fmt.Sprintf("response larger than %d bytes", MaxResponseBytes)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return withCause(&APIError{Op: cl.op, Status: resp.StatusCode, Kind: bad, Message: "MDE answered with JSON this client cannot read"}, cut(err))
	}
	return nil
}

// admit waits for the caller's slot, else for the Gate (when there is one).
func (c *Client) admit(ctx context.Context, cl call) error {
	switch {
	case cl.slot != nil:
		return cl.slot.Wait(ctx)
	case c.gate != nil:
		return c.gate.Admit(ctx, cl.budget)
	}
	return nil
}

func badRequest(op, msg string) error {
	return &APIError{Op: op, Kind: ErrBadRequest, Message: msg}
}

// short abbreviates an id for error text.
func short(id string) string {
	return truncate(id, 12)
}

// commentBody and isolateBody are the exact MDE request bodies: MDE body
// parameters are case-sensitive.
type commentBody struct {
	Comment string `json:"Comment"`
}

type isolateBody struct {
	Comment       string        `json:"Comment"`
	IsolationType IsolationType `json:"IsolationType"`
}

func encodeJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep '<' readable in the MDE portal's comment
	_ = enc.Encode(v)        // plain structs of strings cannot fail
	return bytes.TrimRight(b.Bytes(), "\n")
}

func checkComment(op, comment string) error {
	if strings.TrimSpace(comment) == "" {
		return badRequest(op, "a comment is required")
	}
	return nil
}

// Isolate asks MDE to isolate a machine, sending when slot admits it (nil:
// the client's Gate decides). See the package doc for errors.
func (c *Client) Isolate(ctx context.Context, slot Slot, machineID string, t IsolationType, comment string) (MachineAction, error) {
	op := "isolate machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return MachineAction{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	switch t {
	case Full, Selective, UnManagedDevice:
	default:
		return MachineAction{}, badRequest(op, fmt.Sprintf("isolation type %q is not Full, Selective or UnManagedDevice", string(t)))
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodPost, budget: BudgetIsolate, slot: slot,
		path: "/api/machines/" + url.PathEscape(machineID) + "/isolate",
		body: encodeJSON(isolateBody{Comment: comment, IsolationType: t}),
	}, &a)
	return a, err
}

// Unisolate asks MDE to release a machine from isolation; slot as for
// Isolate.
func (c *Client) Unisolate(ctx context.Context, slot Slot, machineID, comment string) (MachineAction, error) {
	op := "unisolate machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return MachineAction{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodPost, budget: BudgetUnisolate, slot: slot,
		path: "/api/machines/" + url.PathEscape(machineID) + "/unisolate",
		body: encodeJSON(commentBody{Comment: comment}),
	}, &a)
	return a, err
}

// CancelMachineAction cancels an action that is not yet final; slot as for
// Isolate.
func (c *Client) CancelMachineAction(ctx context.Context, slot Slot, actionID, comment string) (MachineAction, error) {
	op := "cancel machine action " + truncate(actionID, 40)
	if !ValidActionID(actionID) {
		return MachineAction{}, badRequest(op, "the action id must be a GUID")
	}
	if err := checkComment(op, comment); err != nil {
		return MachineAction{}, err
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodPost, budget: BudgetCancel, slot: slot,
		path: "/api/machineactions/" + url.PathEscape(actionID) + "/cancel",
		body: encodeJSON(commentBody{Comment: comment}),
	}, &a)
	return a, err
}

// MachineAction reads one action.
func (c *Client) MachineAction(ctx context.Context, actionID string) (MachineAction, error) {
	op := "get machine action " + truncate(actionID, 40)
	if !ValidActionID(actionID) {
		return MachineAction{}, badRequest(op, "the action id must be a GUID")
	}
	var a MachineAction
	err := c.do(ctx, call{
		op: op, method: http.MethodGet, budget: BudgetMachineActions,
		path: "/api/machineactions/" + url.PathEscape(actionID),
	}, &a)
	return a, err
}

// Machine reads one machine by id.
func (c *Client) Machine(ctx context.Context, machineID string) (Machine, error) {
	op := "get machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return Machine{}, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	var m Machine
	err := c.do(ctx, call{
		op: op, method: http.MethodGet, budget: BudgetMachines,
		path: "/api/machines/" + url.PathEscape(machineID),
	}, &m)
	return m, err
}

// MachineActions lists a machine's Isolate and Unisolate actions, newest
// first: `machineId eq '…' and (type eq 'Isolate' or type eq 'Unisolate')`
// with $top MaxActionsPerMachine (more is ErrTruncated).
func (c *Client) MachineActions(ctx context.Context, machineID string) ([]MachineAction, error) {
	op := "list actions of machine " + short(machineID)
	if !ValidMachineID(machineID) {
		return nil, badRequest(op, "the machine id must be 40 hexadecimal digits")
	}
	return c.isolationActions(ctx, op, []string{machineID}, MaxActionsPerMachine)
}

// SortNewestFirst orders actions by CreationDateTimeUTC, newest first; ties
// keep their order.
func SortNewestFirst(acts []MachineAction) {
	sort.SliceStable(acts, func(i, j int) bool {
		return acts[i].CreationDateTimeUTC.After(acts[j].CreationDateTimeUTC)
	})
}

// FindMachinesByName finds machines whose computerDnsName is name; if none
// and name has no dot, those whose name starts with name + ".". No match is
// an empty slice, not an error.
func (c *Client) FindMachinesByName(ctx context.Context, name string) ([]Machine, error) {
	op := fmt.Sprintf("find machines named %q", truncate(name, 80))
	if err := checkHostName(name); err != nil {
		return nil, badRequest(op, err.Error())
	}
	ms, err := c.listMachines(ctx, op, nameEqFilter(name))
	if err != nil || len(ms) > 0 || strings.Contains(name, ".") {
		return ms, err
	}
	return c.listMachines(ctx, op, namePrefixFilter(name))
}

func (c *Client) listMachines(ctx context.Context, op, filter string) ([]Machine, error) {
	var page struct {
		Value []Machine `json:"value"`
	}
	err := c.do(ctx, call{
		op: op, method: http.MethodGet, budget: BudgetMachines,
		path: "/api/machines", query: filterQuery(filter), final404: true, // a typo costs no more calls
	}, &page)
	if errors.Is(err, ErrNotFound) {
		return []Machine{}, nil // MDE answers 404 when no recent machine matches
	}
	if err != nil {
		return nil, err
	}
	if page.Value == nil {
		return []Machine{}, nil
	}
	return page.Value, nil
}

// logger is the caller's request logger (request id, user, machine) when the
// context carries one, else the client's own.
func (c *Client) logger(ctx context.Context) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &c.log
}
