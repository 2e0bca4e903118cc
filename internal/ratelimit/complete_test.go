package ratelimit

import (
	"strings"
	"testing"

	"github.com/soc/isolate-bot/internal/config"
)

// complete fills c's zero fields with production's values (internal/config),
// as internal/app does, so each test states only what it is about.
func complete(c Config) Config {
	if c.Limits.PerMinute == 0 {
		c.Limits.PerMinute = config.DefaultPerMinute
	}
	if c.Limits.PerHour == 0 {
		c.Limits.PerHour = config.DefaultPerHour
	}
	if c.Limits.Minute == 0 {
		c.Limits.Minute = config.DefaultRateLimitMinute
	}
	if c.Limits.Hour == 0 {
		c.Limits.Hour = config.DefaultRateLimitHour
	}
	if c.Prefix == "" {
		c.Prefix = config.DefaultRedisPrefix
	}
	return c
}

// TestConfigRequired: the limiter keeps no defaults; a missing value stops
// construction, naming the field.
func TestConfigRequired(t *testing.T) {
	full := complete(Config{})
	for _, c := range []struct {
		field string
		clear func(*Config)
	}{
		{"Limits.PerMinute", func(c *Config) { c.Limits.PerMinute = 0 }},
		{"Limits.PerHour", func(c *Config) { c.Limits.PerHour = 0 }},
		{"Limits.Minute", func(c *Config) { c.Limits.Minute = 0 }},
		{"Limits.Hour", func(c *Config) { c.Limits.Hour = 0 }},
		{"Prefix", func(c *Config) { c.Prefix = "" }},
	} {
		for name, build := range map[string]func(Config){
			"New":       func(cfg Config) { New(nil, cfg) },
			"NewMemory": func(cfg Config) { NewMemory(cfg) },
		} {
			cfg := full
			c.clear(&cfg)
			msg := panicOf(func() { build(cfg) })
			if !strings.Contains(msg, "Config."+c.field) || !strings.Contains(msg, "internal/config") {
				t.Errorf("%s without %s: panic %q, want one naming the field", name, c.field, msg)
			}
		}
	}
	if msg := panicOf(func() { NewMemory(full) }); msg != "" {
		t.Errorf("NewMemory with a full config panicked: %s", msg)
	}
}

// panicOf runs f and returns its panic value as text ("" if none).
func panicOf(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = r.(string)
		}
	}()
	f()
	return ""
}
