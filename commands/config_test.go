package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/store"
)

// TestConfigRequired: commands keeps no defaults; New refuses a Config
// missing a duration, naming it.
func TestConfigRequired(t *testing.T) {
	for _, c := range []struct {
		field string
		clear func(*Config)
	}{
		{"ApprovalTTL", func(c *Config) { c.ApprovalTTL = 0 }},
		{"QueueMaxWait", func(c *Config) { c.QueueMaxWait = 0 }},
		{"CommandTimeout", func(c *Config) { c.CommandTimeout = 0 }},
		{"CallTimeout", func(c *Config) { c.CallTimeout = -time.Second }},
		{"PollInterval", func(c *Config) { c.PollInterval = 0 }},
		{"PollFastFor", func(c *Config) { c.PollFastFor = 0 }},
		{"PollMaxInterval", func(c *Config) { c.PollMaxInterval = 0 }},
		{"FollowFor", func(c *Config) { c.FollowFor = 0 }},
		{"GroupCacheTTL", func(c *Config) { c.GroupCacheTTL = 0 }},
		{"SchedulerEvery", func(c *Config) { c.SchedulerEvery = 0 }},
	} {
		cfg := testConfig()
		c.clear(&cfg)
		msg := func() (msg string) {
			defer func() { msg, _ = recover().(string) }()
			New(cfg, Deps{})
			return ""
		}()
		if !strings.Contains(msg, "Config."+c.field) || !strings.Contains(msg, "internal/config") {
			t.Errorf("New without %s: panic %q, want one naming the field", c.field, msg)
		}
	}
}

// storeConfig is production's store configuration (internal/config) on now.
func storeConfig(now func() time.Time) store.ApprovalsConfig {
	return store.ApprovalsConfig{Prefix: config.DefaultRedisPrefix, Retention: config.DefaultAuditRetention,
		AuditMaxLen: config.DefaultAuditMaxLen, Now: now}
}

// limiterConfig is production's limiter configuration with lim's non-zero
// fields, on now.
func limiterConfig(lim ratelimit.Limits, now func() time.Time) ratelimit.Config {
	if lim.PerMinute == 0 {
		lim.PerMinute = config.DefaultPerMinute
	}
	if lim.PerHour == 0 {
		lim.PerHour = config.DefaultPerHour
	}
	if lim.Minute == 0 {
		lim.Minute = config.DefaultRateLimitMinute
	}
	if lim.Hour == 0 {
		lim.Hour = config.DefaultRateLimitHour
	}
	return ratelimit.Config{Limits: lim, Prefix: config.DefaultRedisPrefix, Now: now}
}

// mdeConfig is production's MDE client tuning (internal/config) around the
// given endpoints and credentials.
func mdeConfig(c defender.Config) defender.Config {
	f := config.DefaultFixed()
	c.UserAgent = "isolate-bot/test"
	c.MaxGetAttempts, c.BaseBackoff, c.MaxBackoff = f.MDEMaxGetAttempts, f.MDEBaseBackoff, f.MDEMaxBackoff
	c.MaxRetryAfterWait, c.AttemptTimeout = f.MDEMaxRetryAfterWait, config.DefaultMDECallTimeout
	c.NotFoundRetryDelay = f.MDENotFoundRetryDelay
	return c
}
