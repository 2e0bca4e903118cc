#!/usr/bin/env bash
# Server-side benchmark of the rate limiter's script, next to PING, an empty
# script and go-redis/redis_rate's GCRA script, with redis-benchmark (C, one
# thread) instead of the Go client, so the client takes little of the
# machine's CPU. Loopback only: starts its own redis-server on a free port in
# a temporary directory and removes it on exit.
#
#   internal/ratelimit/bench.sh           # this tree's scripts
#   LIMITER_LUA_DIR=/some/old/store internal/ratelimit/bench.sh   # e.g. a previous version
#   CLIENTS=50 REQUESTS=200000 internal/ratelimit/bench.sh   # defaults; ~40 s
#   DEBUG=1 internal/ratelimit/bench.sh   # also print INFO commandstats
#
# Prints one row per case: ops/s, p50 and p99 latency (ms) as seen by
# redis-benchmark, server µs per script from INFO commandstats, and the
# commands the script called per decision.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lua_dir=${LIMITER_LUA_DIR:-$here}
clients=${CLIENTS:-50}
requests=${REQUESTS:-200000}

die() { echo "bench.sh: $*" >&2; exit 1; }
for c in redis-server redis-cli redis-benchmark go; do
  command -v "$c" >/dev/null || die "$c not found in PATH"
done

# redis_rate's script is read from the module cache at run time (never
# copied into this repository): the body of `var allowN = redis.NewScript(`.
rr_dir=$(cd "$here" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/go-redis/redis_rate/v10) ||
  die "cannot locate github.com/go-redis/redis_rate/v10 in the module cache"
rr_lua=$(awk '/^var allowN = redis.NewScript\(`/ {on=1; next} on && /^`\)/ {exit} on {print}' "$rr_dir/lua.go")
[[ $rr_lua == *GCRA* || $rr_lua == *tat* ]] || die "could not extract allowN from $rr_dir/lua.go"

tmp=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free port: try random high ports until redis-server binds one.
for _ in $(seq 20); do
  port=$((20000 + RANDOM % 40000))
  redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no \
    --logfile "$tmp/redis.log" &
  pid=$!
  for _ in $(seq 50); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && break 2
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05 # poll for readiness, bounded to 2.5 s
  done
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
done
[[ -n $pid ]] || die "redis-server did not start; last log: $(tail -5 "$tmp/redis.log" 2>/dev/null)"

# The reserve script: reserve.lua here, limiter_reserve.lua in versions
# that kept the limiter in store/.
reserve_lua=$lua_dir/reserve.lua
[[ -f $reserve_lua ]] || reserve_lua=$lua_dir/limiter_reserve.lua
[[ -f $reserve_lua ]] || die "no reserve.lua or limiter_reserve.lua in $lua_dir"

cli() { redis-cli -p "$port" "$@"; }
load() { cli SCRIPT LOAD "$(cat "$1")"; }
reserve_sha=$(load "$reserve_lua")
empty_sha=$(cli SCRIPT LOAD "return 1")
rr_sha=$(cli SCRIPT LOAD "$rr_lua")
# The limiter's keys: pass as many as this version of the script reads.
nkeys=$(grep -o 'KEYS\[[0-9]\]' "$reserve_lua" | sort -u | wc -l)
keys() { local t="{bench:rl:$1}"; local k=("$t:log" "$t:seq" "$t:blocked"); echo "$nkeys ${k[*]:0:$nkeys}"; }

printf '%s\n' "redis-benchmark -c $clients -n $requests, redis-server $(redis-server --version | grep -o 'v=[^ ]*'), scripts from $lua_dir, load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %9s %8s %8s %12s %12s\n' case ops/s p50-ms p99-ms server-µs calls/op

# run NAME STATCMD ARGS...: benchmark ARGS, then report the server's view.
run() {
  local name=$1 stat=$2; shift 2
  cli CONFIG RESETSTAT >/dev/null
  local csv
  csv=$(timeout 300 redis-benchmark -p "$port" -c "$clients" -n "$requests" --precision 3 --csv "$@" | tail -1)
  local stats
  stats=$(cli INFO commandstats | tr -d '\r'); [[ -n ${DEBUG:-} ]] && echo "$stats" >&2
  local own inner failed
  own=$(grep "^cmdstat_$stat:" <<<"$stats" | sed -E 's/.*calls=([0-9]+),usec=([0-9]+),usec_per_call=([0-9.]+).*/\1 \3/')
  failed=$(grep "^cmdstat_$stat:" <<<"$stats" | sed -E 's/.*failed_calls=([0-9]+).*/\1/')
  [[ $failed == 0 ]] || die "$name: $failed failed calls: $(cli EVALSHA "${@:2}" 2>&1 | head -3)"
  # Commands the script called: everything but the script itself and the
  # CONFIG calls of this script and of redis-benchmark.
  inner=$(grep '^cmdstat_' <<<"$stats" | { grep -v -E "^cmdstat_($stat|config[|][a-z]+):" || true; } |
    sed -E 's/.*:calls=([0-9]+),.*/\1/' | paste -sd+ | sed 's/^$/0/' | bc)
  # shellcheck disable=SC2086
  set -- $own
  IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"$(tr -d '"' <<<"$csv")"
  printf '%-34s %9.0f %8s %8s %12s %12s\n' "$name" "$rps" "$p50" "$p99" "$2" "$(echo "scale=1; $inner / $1" | bc)"
}

# shellcheck disable=SC2046
{
run "PING (round-trip floor)" ping PING
run "empty script (EVALSHA floor)" evalsha EVALSHA "$empty_sha" 0

# Refusal: a full 1,500-entry hour log, production limits (100/min,
# 1,500/h, windows 61 s / 3,605 s): both windows are full, so both rank
# lookups run. Filled on the real clock, so it stays full for an hour.
cli DEL $(keys refuse | cut -d' ' -f2-) >/dev/null
redis-benchmark -p "$port" -c 1 -n 1500 -q EVALSHA "$reserve_sha" $(keys refuse) 1500 61000000 1500 3605000000 0 1000 "" >/dev/null
[[ $(cli ZCARD "{bench:rl:refuse}:log") == 1500 ]] || die "filling the refusal log failed"
[[ $(cli EVALSHA "$reserve_sha" $(keys refuse) 100 61000000 1500 3605000000 0 1000 "" | head -1) == 0 ]] ||
  die "the refusal case admitted a call"
run "limiter refusal, 1,500-entry log" evalsha EVALSHA "$reserve_sha" $(keys refuse) 100 61000000 1500 3605000000 0 1000 ""

# Admit: limits never reached; 50 ms windows keep the log ~1-5k entries
# (as in BenchmarkRedis).
run "limiter admit" evalsha EVALSHA "$reserve_sha" $(keys admit) 1073741824 50000 1073741824 50000 0 1000 ""

# redis_rate (one limit per call): one call a day, spent first, then refused;
# and a limit never reached. ARGV: burst, rate, period (s), cost. The admit
# case's emission interval (3.6 µs) must survive being added to redis_rate's
# ~3e8 s clock, or the script never writes (as with rate 2^30 per second).
cli EVALSHA "$rr_sha" 1 rr:refuse 1 1 86400 1 >/dev/null
run "redis_rate GCRA refusal" evalsha EVALSHA "$rr_sha" 1 rr:refuse 1 1 86400 1
run "redis_rate GCRA admit" evalsha EVALSHA "$rr_sha" 1 rr:admit 1000000000 1000000000 3600 1
}
