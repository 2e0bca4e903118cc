package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/app"
	"github.com/soc/isolate-bot/internal/config"
)

// runCheck validates the configuration, printing every problem, and then
// lets internal/app reach every dependency, one line per check. Any failure
// makes it return an error (exit 1).
func runCheck(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			fmt.Fprintf(stdout, "FAIL config: %d problem(s) — fix these variables (see .env.example):\n", len(ps))
			for _, p := range ps {
				fmt.Fprintf(stdout, "       %s\n", p)
			}
		} else {
			fmt.Fprintf(stdout, "FAIL config: %v\n", err)
		}
		return errors.New("check failed: the configuration is invalid, so nothing else was checked")
	}
	// Each FAIL line carries the error; go-redis's own retry log would repeat it.
	log := app.NewLogger(zerolog.Disabled, "json", io.Discard)
	return app.Check(ctx, cfg, app.Options{Log: log, Version: version}, stdout)
}
