package commands

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// TestClassify pins what each MDE error means for a request: one row per
// kind of error the send loop meets. Changing an outcome is changing a row.
func TestClassify(t *testing.T) {
	at := time.Date(2026, 11, 29, 11, 0, 0, 0, time.UTC)
	throttled := func(after time.Duration) error {
		return &defender.APIError{Op: "isolate", Status: 429, Kind: defender.ErrThrottled, RetryAfter: after}
	}
	forbidden := &defender.APIError{Op: "isolate", Status: 403, Kind: defender.ErrForbidden}
	unauthorized := &defender.APIError{Op: "isolate machine 23f2a6f58cae…", Status: 401, Kind: defender.ErrUnauthorized}
	notFound := &defender.APIError{Op: "isolate machine 23f2a6f58cae…", Status: 404, Code: "ResourceNotFound", Kind: defender.ErrNotFound}
	badRequest := &defender.APIError{Op: "isolate machine 23f2a6f58cae…", Status: 400, Code: "InvalidInput", Kind: defender.ErrBadRequest}
	unreachableErr := &defender.APIError{Op: "isolate machine 23f2a6f58cae…", Kind: defender.ErrUnavailable, Message: "no response from MDE"}
	tokenDown := &defender.APIError{Op: "get Azure AD token for MDE", Status: 503, Kind: defender.ErrUnavailable, Message: "Azure AD is failing; try again later"}
	for _, tc := range []struct {
		name string
		err  error
		try  sendTry
		want outcome
	}{
		{name: "taken over while queued", err: fmt.Errorf("record queue slot: %w", &store.ConflictError{}),
			want: outcome{verdict: notOurs}},
		{name: "rate limit booked beyond the wait", err: &RateLimitError{Budget: "isolate", At: at}, try: sendTry{queueMaxWait: 2 * time.Hour},
			want: outcome{verdict: fail, why: "MDE's rate limit is booked until 11:00:00 UTC, beyond the 2h0m0s this request may wait; nothing was sent to MDE. Request again after that time."}},
		{name: "limiter down", err: fmt.Errorf("%w: reserve: %w", ErrLimiterUnavailable, store.ErrUnavailable),
			want: outcome{verdict: handBack}},
		{name: "store down", err: store.ErrUnavailable, want: outcome{verdict: handBack}},
		{name: "429 with Retry-After", err: throttled(7 * time.Second),
			want: outcome{verdict: sendLater, after: 7 * time.Second, call: "throttled"}},
		{name: "third 429 without Retry-After backs off", err: throttled(0), try: sendTry{throttled: 2},
			want: outcome{verdict: sendLater, after: 30 * time.Second, call: "throttled"}},
		{name: "fifth 429 gives up", err: throttled(time.Second), try: sendTry{throttled: maxThrottled - 1},
			want: outcome{verdict: fail, call: "throttled", why: "MDE kept throttling us (HTTP 429) after 5 attempts; nothing was isolated. Try again later."}},
		{name: "outcome unknown", err: &defender.APIError{Op: "isolate", Kind: defender.ErrOutcomeUnknown},
			want: outcome{verdict: reconcileFirst, call: "outcome unknown"}},
		{name: "action already in progress", err: &defender.APIError{Op: "isolate", Status: 400, Kind: defender.ErrAlreadyInProgress},
			want: outcome{verdict: actionUnderWay, call: "already in progress"}},
		{name: "action under way found before the call", err: &UnderWayError{Action: defender.MachineAction{ID: "a"}},
			want: outcome{verdict: actionUnderWay}},
		{name: "action in progress again after it ended", err: &defender.APIError{Op: "isolate", Status: 400, Kind: defender.ErrAlreadyInProgress},
			try: sendTry{underWay: 1}, want: outcome{verdict: fail, call: "already in progress",
				why: "MDE again said an action is in progress for this machine but lists none under way; nothing was sent. Check the MDE portal (Action center), then request again."}},
		{name: "stopped while queued", err: fmt.Errorf("%w: queued for isolate", errStopped), want: outcome{verdict: stopped}},
		{name: "forbidden", err: forbidden, want: outcome{verdict: fail, call: "error", why: describeMDEError(forbidden)}},
		{name: "credentials refused (401)", err: unauthorized, want: outcome{verdict: fail, call: "error", why: describeMDEError(unauthorized)}},
		{name: "unknown machine (404)", err: notFound, want: outcome{verdict: fail, call: "error", why: describeMDEError(notFound)}},
		{name: "invalid request (400)", err: badRequest, want: outcome{verdict: fail, call: "error", why: describeMDEError(badRequest)}},
		{name: "MDE unreachable: first try backs off", err: unreachableErr,
			want: outcome{verdict: backOff, call: "unavailable", after: 30 * time.Second}},
		{name: "Azure AD unreachable for the token backs off", err: fmt.Errorf("isolate machine 23f2a6f58cae…: %w", tokenDown), try: sendTry{unavailable: 1},
			want: outcome{verdict: backOff, call: "unavailable", after: time.Minute}},
		{name: "fifth unreachable try waits the longest", err: unreachableErr, try: sendTry{unavailable: 4},
			want: outcome{verdict: backOff, call: "unavailable", after: 4 * time.Minute}},
		{name: "sixth unreachable try gives up", err: unreachableErr, try: sendTry{unavailable: len(testConfig().ResendBackoff)},
			want: outcome{verdict: fail, call: "unavailable", why: "MDE (or Azure AD, for the token) could not be reached: no response from MDE, 6 times over 10m30s; nothing was sent to MDE. Request again once it is reachable."}},
		{name: "not from MDE's vocabulary", err: errors.New("boom"),
			want: outcome{verdict: fail, call: "error", why: "the MDE call failed unexpectedly (details in the bot's logs)."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.try.backoff == nil {
				tc.try.backoff = testConfig().ResendBackoff
			}
			if got := classify(tc.err, tc.try); got != tc.want {
				t.Fatalf("classify(%v) = %+v\nwant %+v", tc.err, got, tc.want)
			}
		})
	}
}
