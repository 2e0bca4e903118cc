package ops

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/config"
)

// testOptions are production's options (internal/config), as internal/app
// passes them.
var testOptions = Options{CheckTimeout: config.DefaultReadyCheckTimeout}

// TestCheckTimeoutRequired: ops keeps no default check timeout; without one
// the handler is not built.
func TestCheckTimeoutRequired(t *testing.T) {
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "Options.CheckTimeout") || !strings.Contains(msg, "internal/config") {
			t.Errorf("NewHandler without a check timeout: panic %q, want one naming the field", msg)
		}
	}()
	NewHandler(nil, prometheus.NewRegistry(), zerolog.Nop(), Options{})
}
