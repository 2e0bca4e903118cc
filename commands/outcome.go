package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// verdict is what the send stage does after an MDE call failed.
type verdict int

const (
	// notOurs: another replica took the request over while it waited; stop
	// without a word (the new owner carries on).
	notOurs verdict = iota
	// stopped: the Service is stopping and a wait ended before anything was
	// sent; stop without a word (the lease hands the request on).
	stopped
	// sendLater: MDE throttled us (429); wait outcome.after, then send again.
	sendLater
	// backOff: nothing was sent because MDE or Azure AD could not be
	// reached; hold the request, wait outcome.after (Config.ResendBackoff), then
	// send again. The thread hears of it once.
	backOff
	// handBack: nothing was sent; give the request back to the schedulers
	// to resume soon, reconciling first (see lease.go).
	handBack
	// reconcileFirst: MDE may have acted; look for the request's marker
	// among the machine's actions before any second call.
	reconcileFirst
	// actionUnderWay: MDE has an action under way for the machine: the
	// request follows it when of its own type, fails naming it otherwise,
	// and sends again if it has ended meanwhile (see underway.go).
	actionUnderWay
	// fail: permanent (400 other than a first "action under way", 401,
	// 403, 404, or a limit reached); the request ends failed with
	// outcome.why.
	fail
)

// resendSpan is the whole back-off, for the words of the final failure.
func resendSpan(backoff []time.Duration) time.Duration {
	var d time.Duration
	for _, w := range backoff {
		d += w
	}
	return d
}

// outcome is what an MDE error means for a request.
type outcome struct {
	verdict verdict
	after   time.Duration // sendLater: how long to wait
	why     string        // fail: the reason, in plain words for the thread
	call    string        // the MDE call's audit reason; "" when no call was made
}

// sendTry is what the send loop knows when classifying an error.
type sendTry struct {
	throttled    int             // 429s answered before this error
	unavailable  int             // tries that reached nobody before this error (kept on the request's Note)
	underWay     int             // "already in progress" answers before this error
	queueMaxWait time.Duration   // for the words of a rate-limit refusal
	backoff      []time.Duration // Config.ResendBackoff
}

// maxThrottled bounds the attempts of one request against MDE 429s.
const maxThrottled = 5

// classify decides what err, from one Isolate/Unisolate call, means for
// the request. It is pure: every behaviour of the send loop on errors is
// in this table of cases, and TestClassify pins it.
func classify(err error, try sendTry) outcome {
	var rl *RateLimitError
	var ce *store.ConflictError
	var uw *UnderWayError
	switch {
	case errors.As(err, &ce):
		return outcome{verdict: notOurs}
	case errors.As(err, &uw):
		return outcome{verdict: actionUnderWay} // found before any call
	case errors.As(err, &rl):
		return outcome{verdict: fail, why: fmt.Sprintf("MDE's rate limit is booked until %s, beyond the %s this request may wait; nothing was sent to MDE. Request again after that time.",
			hhmmss(rl.At), try.queueMaxWait)}
	case errors.Is(err, ErrLimiterUnavailable), errors.Is(err, store.ErrUnavailable):
		return outcome{verdict: handBack}
	case errors.Is(err, errStopped):
		return outcome{verdict: stopped}
	case errors.Is(err, defender.ErrThrottled):
		n := try.throttled + 1
		if n >= maxThrottled {
			return outcome{verdict: fail, call: "throttled", why: fmt.Sprintf("MDE kept throttling us (HTTP 429) after %d attempts; nothing was isolated. Try again later.", n)}
		}
		return outcome{verdict: sendLater, call: "throttled", after: retryAfter(err, n)}
	case errors.Is(err, defender.ErrOutcomeUnknown):
		return outcome{verdict: reconcileFirst, call: "outcome unknown"}
	case errors.Is(err, defender.ErrAlreadyInProgress):
		if try.underWay > 0 {
			// The action MDE meant ended, we sent again, and MDE still
			// refuses: something we cannot see is in the way.
			return outcome{verdict: fail, call: "already in progress", why: "MDE again said an action is in progress for this machine but lists none under way; nothing was sent. Check the MDE portal (Action center), then request again."}
		}
		return outcome{verdict: actionUnderWay, call: "already in progress"}
	case errors.Is(err, defender.ErrUnavailable):
		// Nothing reached MDE (a POST that may have is ErrOutcomeUnknown).
		n := try.unavailable + 1
		if n > len(try.backoff) {
			return outcome{verdict: fail, call: "unavailable", why: fmt.Sprintf("%s, %d times over %s; nothing was sent to MDE. Request again once it is reachable.",
				unreachable(err), n, resendSpan(try.backoff))}
		}
		return outcome{verdict: backOff, call: "unavailable", after: try.backoff[n-1]}
	}
	return outcome{verdict: fail, call: "error", why: describeMDEError(err)}
}

// retryAfter is MDE's Retry-After, else a linear back-off from the n-th 429.
func retryAfter(err error, n int) time.Duration {
	if apiErr := asAPIError(err); apiErr != nil && apiErr.RetryAfter > 0 {
		return apiErr.RetryAfter
	}
	return time.Duration(n) * 10 * time.Second
}

// describeMDEError turns an MDE failure into words a SOC analyst can act
// on. APIError never carries secrets.
func describeMDEError(err error) string {
	var rl *RateLimitError
	switch {
	case errors.As(err, &rl):
		return fmt.Sprintf("MDE's rate limit is full; the next free slot is at %s.", hhmmss(rl.At))
	case errors.Is(err, ErrLimiterUnavailable), errors.Is(err, store.ErrUnavailable):
		return "the state store (rate limiter) is unavailable, so nothing was sent to MDE."
	case errors.Is(err, defender.ErrForbidden):
		return "The Azure app lacks the " + permissionFor(err) + " application permission (admin consent needed)" + apiDetail(err) + "."
	case errors.Is(err, defender.ErrUnauthorized):
		return "MDE rejected the app's credentials (check the Azure app registration's tenant, client id and secret)" + apiDetail(err) + "."
	case errors.Is(err, defender.ErrNotFound):
		return "MDE does not know this machine (it may be outside MDE's retention)" + apiDetail(err) + "."
	case errors.Is(err, defender.ErrBadRequest):
		return "MDE rejected the request as invalid (e.g. an isolation type the device does not support)" + apiDetail(err) + "."
	case errors.Is(err, defender.ErrThrottled):
		return "MDE is throttling us (HTTP 429); try again in a few minutes."
	case errors.Is(err, defender.ErrUnavailable):
		return "MDE is unavailable right now" + apiDetail(err) + "; try again later."
	case errors.Is(err, defender.ErrOutcomeUnknown):
		return "MDE did not answer in time; check the MDE portal (Action center) before trying again."
	case errors.Is(err, context.DeadlineExceeded):
		return "MDE did not answer in time."
	}
	if apiErr := asAPIError(err); apiErr != nil {
		return "MDE call failed: " + apiErr.Error() + "."
	}
	// Not from the MDE client's vocabulary: keep its text in the logs only.
	return "the MDE call failed unexpectedly (details in the bot's logs)."
}

// permissionFor names the MDE application permission the failed call
// needs, from its APIError's Op: the MDE client and the simulator start
// every Op with the operation's verb ("isolate machine 7b1f…", "get
// machine action …"). Writes (isolate, release, cancel) need
// Machine.Isolate; reads need Machine.Read.All.
func permissionFor(err error) string {
	const either = "Machine.Isolate or Machine.Read.All"
	apiErr := asAPIError(err)
	if apiErr == nil {
		return either
	}
	switch verb, _, _ := strings.Cut(apiErr.Op, " "); verb {
	case "isolate", "unisolate", "cancel":
		return "Machine.Isolate"
	case "get", "list", "find":
		return "Machine.Read.All"
	}
	return either
}

// unreachable says, without a final full stop, that an MDE call reached
// nobody, with what the MDE client knows.
func unreachable(err error) string {
	return "MDE (or Azure AD, for the token) could not be reached" + apiDetail(err)
}

// asAPIError is err's *defender.APIError, or nil.
func asAPIError(err error) *defender.APIError {
	var apiErr *defender.APIError
	errors.As(err, &apiErr)
	return apiErr
}

// apiDetail is " (HTTP 403 Code): message" from err's APIError, or "".
func apiDetail(err error) string {
	apiErr := asAPIError(err)
	if apiErr == nil {
		return ""
	}
	detail := ""
	if apiErr.Status != 0 {
		detail = fmt.Sprintf(" (HTTP %d", apiErr.Status)
		if apiErr.Code != "" {
			detail += " " + apiErr.Code
		}
		detail += ")"
	}
	if apiErr.Message != "" {
		detail += ": " + apiErr.Message
	}
	return detail
}
