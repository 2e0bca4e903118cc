package defender

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// causedError is an *APIError plus the lower-level error that caused it
// (a rate-limiter error, a context error, a transport error), so callers can
// use errors.As for the APIError and errors.Is for both its Kind and the
// cause.
type causedError struct {
	api   *APIError
	cause error
}

func (e *causedError) Error() string   { return e.api.Error() + ": " + e.cause.Error() }
func (e *causedError) Unwrap() []error { return []error{e.api, e.cause} }

// withCause attaches cause to api; a nil cause returns api itself.
func withCause(api *APIError, cause error) error {
	if cause == nil {
		return api
	}
	return &causedError{api: api, cause: cause}
}

// mdeErrorBody is MDE's error envelope.
type mdeErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target"`
	} `json:"error"`
}

// maxMessageLen bounds MDE's free-text message kept in an APIError, which
// may end up in a chat message.
const maxMessageLen = 500

// mapStatus turns a non-2xx MDE response into an *APIError. isPost decides
// whether a 5xx means "unavailable" (nothing happened, a GET may retry) or
// "outcome unknown" (the action may have been created).
func mapStatus(op string, isPost bool, status int, header http.Header, body []byte, now time.Time) *APIError {
	var env mdeErrorBody
	_ = json.Unmarshal(body, &env) // not MDE JSON (a proxy's HTML page): keep status only
	e := &APIError{
		Op:      op,
		Status:  status,
		Code:    truncate(env.Error.Code, 100),
		Message: truncate(redact(env.Error.Message), maxMessageLen),
		Target:  truncate(env.Error.Target, 100),
	}
	code := env.Error.Code
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind = ErrThrottled
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	case status == http.StatusNotFound || strings.EqualFold(code, "ResourceNotFound") || strings.EqualFold(code, "NotFound"):
		e.Kind = ErrNotFound
	case status >= 400 && status < 500 && (strings.EqualFold(code, "ActiveRequestAlreadyExists") ||
		strings.Contains(strings.ToLower(env.Error.Message), "action is already in progress")):
		e.Kind = ErrAlreadyInProgress
	case status == http.StatusUnauthorized:
		e.Kind = ErrUnauthorized
	case status == http.StatusForbidden:
		e.Kind = ErrForbidden
	case status >= 400 && status < 500:
		e.Kind = ErrBadRequest
	case isPost:
		// 5xx, or a status MDE never sends (3xx, 1xx): the request
		// reached something, so the action may exist.
		e.Kind = ErrOutcomeUnknown
	default:
		e.Kind = ErrUnavailable
	}
	return e
}

// maxRetryAfter bounds a parsed Retry-After so a hostile or broken header
// cannot overflow a Duration.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3). Missing or unparsable gives 0; a date in the past gives 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	switch {
	case d <= 0:
		return 0
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}

var (
	// A URL's query can carry codes or signatures: keep scheme, host and path.
	urlQueryRe = regexp.MustCompile(`(https?://[^\s?#"'<>]*)[?#][^\s"'<>]*`)
	// Anything shaped like a JWT (access or id token, client assertion).
	jwtRe = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
)

// redact removes URL query strings and JWTs from free text that came from
// elsewhere (MDE messages, MSAL errors).
func redact(s string) string {
	s = urlQueryRe.ReplaceAllString(s, "$1?[redacted]")
	return jwtRe.ReplaceAllString(s, "[redacted token]")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
