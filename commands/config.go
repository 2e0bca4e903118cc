package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/soc/isolate-bot/internal/protect"
)

// Config is the behaviour of a Service. Every duration is required:
// internal/app passes internal/config's values, and commands keeps no
// defaults of its own.
type Config struct {
	AllowedUsers    []string      // Slack user ids (U…/W…) and user-group ids (S…) allowed to request
	Approvers       []string      // same forms, allowed to approve/deny
	AllowedChannels []string      // empty: any channel
	ApprovalTTL     time.Duration // how long a request waits for a decision
	QueueMaxWait    time.Duration // how long an approved request may wait for a rate-limit slot
	CommandTimeout  time.Duration // per slash command / click work; the transport's per-delivery timeout is the same value
	CallTimeout     time.Duration // one MDE call (MDE_CALL_TIMEOUT)
	PollInterval    time.Duration // reads of followed MDE actions during their first PollFastFor (and the poller's cycle)
	PollFastFor     time.Duration // then reads back off, doubling each PollFastFor
	PollMaxInterval time.Duration // up to one read this often
	FollowFor       time.Duration // FOLLOW_FOR: stop following an action this long after MDE created it
	GroupCacheTTL   time.Duration // user-group membership cache
	SchedulerEvery  time.Duration // scheduler tick (leases are counted in it)
	Protected       protect.Set   // PROTECTED_MACHINES; the zero Set protects nothing
	ProtectedMode   protect.Mode  // PROTECTED_MODE; the zero Mode is two approvers
	// ResendBackoff is how long the send stage waits before each new try
	// of a write that reached nobody (DNS, connection, TLS, Azure AD
	// unreachable); after the last the request fails.
	ResendBackoff []time.Duration
	// ReconcileChecks are when, after a write whose outcome is unknown,
	// the machine's actions are read for the request's marker before any
	// resend (MDE lists a new action late).
	ReconcileChecks []time.Duration
	// RefusalBurst refusals to one user within RefusalWindow are answered;
	// then one "slow down", then silence until the window ends.
	RefusalBurst  int
	RefusalWindow time.Duration
	// BulkMax (BULK_MAX) is the most machines one command may name; 0 or
	// less refuses every list and tag (fail closed: no bound, no bulk).
	BulkMax int
	// BulkTwoApproversOver (BULK_TWO_APPROVERS_OVER): a command naming
	// more machines needs two different approvers; 0 or less means every
	// bulk command does.
	BulkTwoApproversOver int
	// RatePerMinute (RATE_LIMIT_PER_MINUTE) paces a batch: the card's
	// estimate of its end; 0: no estimate.
	RatePerMinute int
	// BulkProgressEvery is how often a running batch's card is updated
	// (and the most often its thread hears from it).
	BulkProgressEvery time.Duration
	// BulkReadEvery: while a batch sends, its actions are read once per
	// this many calls sent (and at least every PollMaxInterval).
	BulkReadEvery int
	// BulkReadSkew: a batch's reads ask for actions created this long
	// before the batch started, for replica and MDE clocks out of step.
	BulkReadSkew time.Duration
}

// check panics when a duration is missing: a zero one would time every
// command out at once or follow no action at all.
func (c Config) check() {
	var missing []string
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"ApprovalTTL", c.ApprovalTTL},
		{"QueueMaxWait", c.QueueMaxWait},
		{"CommandTimeout", c.CommandTimeout},
		{"CallTimeout", c.CallTimeout},
		{"PollInterval", c.PollInterval},
		{"PollFastFor", c.PollFastFor},
		{"PollMaxInterval", c.PollMaxInterval},
		{"FollowFor", c.FollowFor},
		{"GroupCacheTTL", c.GroupCacheTTL},
		{"SchedulerEvery", c.SchedulerEvery},
		{"RefusalWindow", c.RefusalWindow},
		{"BulkProgressEvery", c.BulkProgressEvery},
		{"BulkReadSkew", c.BulkReadSkew},
	} {
		if f.d <= 0 {
			missing = append(missing, f.name)
		}
	}
	if len(c.ResendBackoff) == 0 {
		missing = append(missing, "ResendBackoff")
	}
	if len(c.ReconcileChecks) == 0 {
		missing = append(missing, "ReconcileChecks")
	}
	if c.BulkReadEvery <= 0 {
		missing = append(missing, "BulkReadEvery")
	}
	if c.RefusalBurst <= 0 {
		missing = append(missing, "RefusalBurst")
	}
	if len(missing) > 0 {
		panic(fmt.Sprintf("commands: Config.%s not set; internal/app passes internal/config's value", strings.Join(missing, ", Config.")))
	}
}
