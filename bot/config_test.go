package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/store"
)

// testDrain stands for internal/app's share of SHUTDOWN_TIMEOUT.
const testDrain = 10 * time.Second

// complete fills c's zero fields with production's values (internal/config),
// as internal/app does, so each test states only what it is about.
func complete(c Config) Config {
	f := config.DefaultFixed()
	for _, v := range []struct {
		p   *int
		def int
	}{{&c.Workers, config.DefaultWorkers}, {&c.Queue, f.CommandQueue}, {&c.ClickWorkers, f.ClickWorkers}, {&c.ClickQueue, f.ClickQueue}} {
		if *v.p == 0 {
			*v.p = v.def
		}
	}
	for _, v := range []struct {
		p   *time.Duration
		def time.Duration
	}{{&c.CommandTimeout, f.CommandTimeout}, {&c.DrainTimeout, testDrain}, {&c.DedupTTL, f.DedupTTL}} {
		if *v.p == 0 {
			*v.p = v.def
		}
	}
	return c
}

// storeConfig is production's store configuration (internal/config).
func storeConfig() store.ApprovalsConfig {
	return store.ApprovalsConfig{Prefix: config.DefaultRedisPrefix, Retention: config.DefaultAuditRetention,
		AuditMaxLen: config.DefaultAuditMaxLen}
}

// TestConfigRequired: the Runner keeps no defaults; New refuses a Config
// missing a value, naming it.
func TestConfigRequired(t *testing.T) {
	for _, c := range []struct {
		field string
		clear func(*Config)
	}{
		{"Workers", func(c *Config) { c.Workers = 0 }},
		{"Queue", func(c *Config) { c.Queue = 0 }},
		{"ClickWorkers", func(c *Config) { c.ClickWorkers = 0 }},
		{"ClickQueue", func(c *Config) { c.ClickQueue = 0 }},
		{"CommandTimeout", func(c *Config) { c.CommandTimeout = 0 }},
		{"DrainTimeout", func(c *Config) { c.DrainTimeout = 0 }},
		{"DedupTTL", func(c *Config) { c.DedupTTL = 0 }},
	} {
		cfg := complete(Config{})
		c.clear(&cfg)
		msg := func() (msg string) {
			defer func() { msg, _ = recover().(string) }()
			New(cfg, &fakeService{}, nil, nil, zerolog.Nop(), nil)
			return ""
		}()
		if !strings.Contains(msg, "Config."+c.field) || !strings.Contains(msg, "internal/config") {
			t.Errorf("New without %s: panic %q, want one naming the field", c.field, msg)
		}
	}
}
