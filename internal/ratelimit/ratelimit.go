// Package ratelimit keeps every replica of isolate-bot within MDE's call
// limits (100 a minute and 1,500 an hour per API): an exact two-window
// sliding-log limiter shared through Redis (Limiter) or held in one process
// (Memory), and the Gate that admits or queues each MDE call.
//
// The Gate decides before anyone waits: Reserve returns a Ticket for now or
// for a reserved future slot, so the caller can tell the user when the call
// will go, and Ticket.Wait then ends at that slot. See README.md.
package ratelimit

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ttlMargin is added to every key TTL: a key lives until its newest entry
// (or the block) has expired, plus this.
const ttlMargin = time.Second

// ErrUnavailable wraps every failure to reach the limiter's store: callers
// fail closed and send nothing to MDE.
var ErrUnavailable = errors.New("rate limiter unavailable")

// Limits configures one budget: MDE allows PerMinute calls per Minute and
// PerHour per Hour. The windows include a safety margin against clock jitter
// and network delay between our decision and MDE's count (internal/config
// holds the values); the counts never shrink.
type Limits struct {
	PerMinute int
	PerHour   int
	Minute    time.Duration
	Hour      time.Duration
}

// Decision is the limiter's answer.
type Decision struct {
	// Allowed: the call may be sent at At (now, or a future reserved slot).
	// Refused: At is the exact earliest time a call would be admitted.
	Allowed bool
	At      time.Time
	// Token identifies an admitted slot, for Release.
	Token string
	// Minute and Hour are the admitted calls in the trailing windows,
	// including this one when allowed.
	Minute, Hour int
}

// Config configures Limiter and Memory. Every field but Now is required;
// internal/app passes internal/config's values.
type Config struct {
	Limits Limits
	// Prefix of every key ("isolate-bot"); lets tests and deployments share
	// a Redis. Must not contain '{' or '}'.
	Prefix string
	// Now is the local clock (nil: time.Now): the memory twin's only clock;
	// the Redis limiter uses it only to turn server-relative slots into
	// Decision.At and Block's until into a delay, so client clock skew never
	// matters.
	Now func() time.Time
}

// checked returns c with a nil clock set to time.Now. It panics when a
// value is missing: the limiter keeps no defaults of its own, and a zero
// window or count would silently admit every call or none.
func (c Config) checked() Config {
	var missing []string
	for _, f := range []struct {
		name string
		zero bool
	}{
		{"Limits.PerMinute", c.Limits.PerMinute <= 0},
		{"Limits.PerHour", c.Limits.PerHour <= 0},
		{"Limits.Minute", c.Limits.Minute <= 0},
		{"Limits.Hour", c.Limits.Hour <= 0},
		{"Prefix", c.Prefix == ""},
	} {
		if f.zero {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		panic(fmt.Sprintf("ratelimit: Config.%s not set; internal/app passes internal/config's value", strings.Join(missing, ", Config.")))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Keys returns the Redis keys of one budget: the log of admitted slots and
// the hash holding its counter, clock and blocked-until. They share the
// hash tag {<prefix>:rl:<budget>}, so they live in one Redis Cluster slot.
func Keys(prefix, budget string) (log, seq string) {
	tag := "{" + prefix + ":rl:" + budget + "}"
	return tag + ":log", tag + ":seq"
}

// checkName rejects names that would break the hash tag of the keys.
func checkName(what, s string) error {
	if s == "" || strings.ContainsAny(s, "{}") {
		return fmt.Errorf("rate limiter: invalid %s %q: must be non-empty, without '{' or '}'", what, s)
	}
	return nil
}
