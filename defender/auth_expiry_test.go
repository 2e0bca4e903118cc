package defender_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/internal/redistest"
)

// Scaled time: a 2 s "minute" window and tokens MDE accepts for 1 s stand
// for a queue wait of up to QUEUE_MAX_WAIT and an hour-long token.
const (
	window   = 2 * time.Second
	lifetime = time.Second
)

// TestTokenExpiresWhileQueued runs the real client, MSAL included, against
// fake MDE whose tokens expire while a call waits for its rate-limit slot
// (the shared Redis limiter holding one call per window). Every kind of
// call (a write with a reserved slot, a write the client admits itself, a
// read) must succeed, sent exactly once with a token MDE accepts:
//   - "MSAL sees the expiry": the token response states the short lifetime,
//     so a token read after admission is fresh and MDE never answers 401
//     (a token read before the wait would be refused);
//   - "MSAL holds a refused token": the response states an hour, as real
//     Azure AD does, while MDE refuses the token after 1 s (the stand-in
//     for MSAL's 5-minute margin against a 2-hour queue); the cached token
//     gets one 401, and the call is admitted again and sent once more with
//     a token fetched past MSAL's cache.
func TestTokenExpiresWhileQueued(t *testing.T) {
	rs := redistest.Start(t)
	calls := []struct {
		name   string
		op     string
		budget string
		slot   bool
	}{
		{"write with a slot", fakemde.OpIsolate, defender.BudgetIsolate, true},
		{"write without a slot", fakemde.OpIsolate, defender.BudgetIsolate, false},
		{"read", fakemde.OpMachine, defender.BudgetMachines, false},
	}
	modes := []struct {
		name      string
		expiresIn time.Duration
		want401   int
	}{
		{"MSAL sees the expiry", lifetime, 0},
		{"MSAL holds a refused token", time.Hour, 1},
	}
	for _, m := range modes {
		for _, c := range calls {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				f := fakemde.New(t, nil)
				f.SetTokens(fakemde.TokenOptions{Lifetime: lifetime, ExpiresIn: m.expiresIn})
				limiter := ratelimit.New(rs.Client(), ratelimit.Config{
					Limits: ratelimit.Limits{PerMinute: 1, PerHour: 100, Minute: window, Hour: 10 * window},
					Prefix: "expiry-" + strings.NewReplacer(" ", "-", "/", "-").Replace(t.Name()),
				})
				gate := ratelimit.NewGate(limiter, 3*window, nil, zerolog.Nop())
				client, err := defender.New(defender.Config{
					APIURL: f.URL(), AuthorityHost: f.URL(), TenantID: fakemde.TenantID,
					ClientID: fakemde.ClientID, ClientSecret: fakemde.ClientSecret,
					HTTPClient: f.HTTPClient(), Gate: gate, MaxGetAttempts: 1,
					UserAgent: "isolate-bot/test", BaseBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
					MaxRetryAfterWait: 30 * time.Second, AttemptTimeout: 30 * time.Second, NotFoundRetryDelay: 2 * time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*window)
				defer cancel()

				// A token in MSAL's cache before the wait, as /readyz keeps one.
				if err := client.Token(ctx); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				// Another replica's call takes this window's only slot.
				if err := gate.Admit(ctx, c.budget); err != nil {
					t.Fatal(err)
				}
				var slot defender.Slot
				if c.slot {
					ticket, err := gate.Reserve(ctx, c.budget)
					if err != nil {
						t.Fatal(err)
					}
					slot = ticket
				}
				switch c.op {
				case fakemde.OpIsolate:
					_, err = client.Isolate(ctx, slot, defender.SimWeb01, defender.Full, "beacon [isolate-bot r-1]")
				default:
					_, err = client.Machine(ctx, defender.SimWeb01)
				}
				if err != nil {
					t.Fatalf("call after the queue wait: %v", err)
				}

				var got401, ok int
				var sentAt time.Time
				for _, r := range f.Requests(c.op) {
					switch {
					case r.Status == http.StatusUnauthorized:
						got401++
					case r.Status >= 200 && r.Status < 300:
						ok++
						sentAt = r.At
					}
				}
				if got401 != m.want401 || ok != 1 {
					t.Fatalf("%s at MDE: %d answered 401, %d accepted; want %d and exactly 1", c.op, got401, ok, m.want401)
				}
				if wait := sentAt.Sub(start); wait < lifetime {
					t.Fatalf("the call went out after %s, not past the token lifetime %s: the test proves nothing", wait, lifetime)
				}
				if c.op == fakemde.OpIsolate {
					acts, _ := f.Sim.MachineActions(ctx, defender.SimWeb01)
					if len(acts) != 1 {
						t.Errorf("%d isolate actions in MDE, want exactly 1", len(acts))
					}
				}
			})
		}
	}
}
