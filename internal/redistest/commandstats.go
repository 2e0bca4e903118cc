package redistest

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CommandCalls sums the server's INFO commandstats: every command Redis
// ran, the scripts' inner commands included, without the script calls
// themselves and the bookkeeping of clients and tests (INFO, CONFIG,
// CLIENT, HELLO, PING, SCRIPT, MULTI/EXEC). On a server of its own it is
// what a run cost Redis.
func CommandCalls(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, fmt.Errorf("redistest: INFO commandstats: %w", err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok || bookkeeping(name) {
			continue
		}
		var c int64
		if _, err := fmt.Sscanf(rest, "%d", &c); err != nil {
			return 0, fmt.Errorf("redistest: parsing %q: %w", line, err)
		}
		n += c
	}
	return n, nil
}

func bookkeeping(name string) bool {
	switch name {
	case "evalsha", "eval", "info", "multi", "exec", "script", "hello", "ping":
		return true
	}
	return strings.HasPrefix(name, "config") || strings.HasPrefix(name, "client")
}
