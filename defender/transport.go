package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"
)

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

func (g gateRefusal) Error() string { return "rate limiter: " + g.err.Error() }

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
