package bot

import (
	"fmt"
	"strings"
	"time"
)

// Config tunes the Runner. Every field but PingInterval and Now is
// required: internal/app passes internal/config's values, and the Runner
// keeps no defaults of its own.
type Config struct {
	Workers int // concurrent slash-command handlers (WORKERS)
	Queue   int // slash commands waiting for a worker
	// ClickWorkers and ClickQueue are the button clicks' own lane, so a
	// flood of commands (refused or not) never delays an Approve.
	ClickWorkers int
	ClickQueue   int
	// CommandTimeout bounds one delivery: de-duplication and the service's
	// work. It is the commands service's own CommandTimeout, so the work's
	// deadline is never cut shorter than the service expects.
	CommandTimeout time.Duration
	DrainTimeout   time.Duration // on shutdown, wait this long for queued work
	DedupTTL       time.Duration // how long a delivery id is remembered
	// PingInterval is socketmode's watchdog: reconnect when Slack sent no
	// PING for this long. Zero keeps slack-go's own (30s).
	PingInterval time.Duration
	Now          func() time.Time // nil: time.Now
}

// checked returns c with a nil clock set to time.Now; it panics when a
// required value is missing.
func (c Config) checked() Config {
	var missing []string
	for _, f := range []struct {
		name string
		zero bool
	}{
		{"Workers", c.Workers <= 0},
		{"Queue", c.Queue <= 0},
		{"ClickWorkers", c.ClickWorkers <= 0},
		{"ClickQueue", c.ClickQueue <= 0},
		{"CommandTimeout", c.CommandTimeout <= 0},
		{"DrainTimeout", c.DrainTimeout <= 0},
		{"DedupTTL", c.DedupTTL <= 0},
	} {
		if f.zero {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		panic(fmt.Sprintf("bot: Config.%s not set; internal/app passes internal/config's value", strings.Join(missing, ", Config.")))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
