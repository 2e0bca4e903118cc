package store

import (
	"strings"
	"testing"

	"github.com/soc/isolate-bot/internal/config"
)

// complete fills c's zero fields with production's values (internal/config),
// as internal/app does, so each test states only what it is about.
func complete(c ApprovalsConfig) ApprovalsConfig {
	if c.Prefix == "" {
		c.Prefix = config.DefaultRedisPrefix
	}
	if c.Retention == 0 {
		c.Retention = config.DefaultAuditRetention
	}
	if c.AuditMaxLen == 0 {
		c.AuditMaxLen = config.DefaultAuditMaxLen
	}
	return c
}

// TestApprovalsConfigRequired: the store keeps no defaults; a missing value
// stops construction, naming the field.
func TestApprovalsConfigRequired(t *testing.T) {
	for _, c := range []struct {
		field string
		clear func(*ApprovalsConfig)
	}{
		{"Prefix", func(c *ApprovalsConfig) { c.Prefix = "" }},
		{"Retention", func(c *ApprovalsConfig) { c.Retention = 0 }},
		{"AuditMaxLen", func(c *ApprovalsConfig) { c.AuditMaxLen = 0 }},
	} {
		for name, build := range map[string]func(ApprovalsConfig){
			"NewApprovals":       func(cfg ApprovalsConfig) { NewApprovals(nil, cfg) },
			"NewMemoryApprovals": func(cfg ApprovalsConfig) { NewMemoryApprovals(cfg) },
		} {
			cfg := complete(ApprovalsConfig{})
			c.clear(&cfg)
			msg := panicOf(func() { build(cfg) })
			if !strings.Contains(msg, "ApprovalsConfig."+c.field) || !strings.Contains(msg, "internal/config") {
				t.Errorf("%s without %s: panic %q, want one naming the field", name, c.field, msg)
			}
		}
	}
	if msg := panicOf(func() { NewMemoryApprovals(complete(ApprovalsConfig{})) }); msg != "" {
		t.Errorf("NewMemoryApprovals with a full config panicked: %s", msg)
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
