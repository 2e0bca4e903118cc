// Command bot is isolate-bot: the Slack bot (no subcommand), the terminal
// try-out (console), a configuration and connectivity check (check),
// version and help. All logic lives in run so tests drive it directly.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
