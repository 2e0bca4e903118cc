package commands

import "time"

// Config is the behaviour of a Service. Zero durations take the defaults
// documented on each field (see withDefaults).
type Config struct {
	AllowedUsers    []string      // Slack user ids (U…/W…) and user-group ids (S…) allowed to request
	Approvers       []string      // same forms, allowed to approve/deny
	AllowedChannels []string      // empty: any channel
	ApprovalTTL     time.Duration // default 1h
	QueueMaxWait    time.Duration // how long an approved request may wait for a rate-limit slot (default 2h)
	CommandTimeout  time.Duration // per slash command / click work (default 20s)
	CallTimeout     time.Duration // one MDE call (default 30s)
	PollInterval    time.Duration // MachineAction status polling after the POST (default 30s)
	PollFor         time.Duration // stop following status after this (default 30m)
	GroupCacheTTL   time.Duration // user-group membership cache (default 5m)
	SchedulerEvery  time.Duration // scheduler tick (default 5s)
}

// withDefaults fills the zero durations. This is the one place commands
// keeps defaults, until they move to internal/config with the others.
func (c Config) withDefaults() Config {
	for _, f := range []struct {
		d   *time.Duration
		def time.Duration
	}{
		{&c.ApprovalTTL, time.Hour},
		{&c.QueueMaxWait, 2 * time.Hour},
		{&c.CommandTimeout, 20 * time.Second},
		{&c.CallTimeout, 30 * time.Second},
		{&c.PollInterval, 30 * time.Second},
		{&c.PollFor, 30 * time.Minute},
		{&c.GroupCacheTTL, 5 * time.Minute},
		{&c.SchedulerEvery, 5 * time.Second},
	} {
		if *f.d <= 0 {
			*f.d = f.def
		}
	}
	return c
}
