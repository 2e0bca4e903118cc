package app

import (
	"errors"
	"fmt"

	"github.com/soc/isolate-bot/internal/config"
)

// ErrConsoleSharesState refuses a console with the simulator on the Redis
// keys of running bots: its simulated actions would be recorded as the
// production requests' state and audit trail.
var ErrConsoleSharesState = errors.New("the console with the MDE simulator would share running bots' Redis state")

// checkConsoleState refuses to start a console that simulates MDE on a
// shared Redis under the default REDIS_PREFIX. A prefix of its own
// separates every key (requests, audit, limiter); the real MDE API is
// allowed on the shared state (the console then acts as another bot).
func checkConsoleState(cfg config.Config, o Options) error {
	if o.Console == nil || !cfg.UseRedis() || !cfg.DefenderSimulate {
		return nil
	}
	if cfg.RedisPrefix != "" && cfg.RedisPrefix != config.DefaultRedisPrefix {
		return nil
	}
	return fmt.Errorf("%w: REDIS_URL is set, DEFENDER_SIMULATE is on and REDIS_PREFIX is %q. "+
		"Set REDIS_PREFIX to a prefix of the console's own (e.g. REDIS_PREFIX=console-try), "+
		"or unset REDIS_URL to keep the try-out in memory", ErrConsoleSharesState, config.DefaultRedisPrefix)
}
