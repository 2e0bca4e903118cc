package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/ops"
)

// NewLogger builds the process's root logger: JSON for collectors, or
// zerolog's console writer for humans, on w (stderr). It also sets the
// process-wide defaults, so only the command calls it (tests pass their own
// logger in Options.Log): zerolog.Ctx never silently drops a line, and
// go-redis logs pool trouble through it in the same format.
func NewLogger(level zerolog.Level, format string, w io.Writer) zerolog.Logger {
	out := w
	if format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	log := zerolog.New(out).Level(level).With().Timestamp().Str("service", "isolate-bot").Logger()
	zerolog.DefaultContextLogger = &log
	redis.SetLogger(redisLogger{log.With().Str("component", "redis").Logger()})
	return log
}

// redisLogger adapts zerolog to go-redis's internal logging.
type redisLogger struct{ l zerolog.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn().Msg(ops.Redact(fmt.Sprintf(format, v...)))
}
