package deploy_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Memory size units of the three dialects the deploy files use.
var (
	// redis.conf: k/m/g are powers of 1000, kb/mb/gb of 1024.
	redisUnits = map[string]float64{"": 1, "b": 1, "k": 1e3, "kb": 1 << 10, "m": 1e6, "mb": 1 << 20, "g": 1e9, "gb": 1 << 30}
	// Kubernetes quantities: Ki/Mi/Gi binary, k/M/G decimal.
	k8sUnits = map[string]float64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1e3, "M": 1e6, "G": 1e9}
	// Docker/Compose (docker/go-units RAMInBytes): every unit is binary.
	dockerUnits = map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
)

var sizeRe = regexp.MustCompile(`^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$`)

// bytesOf parses s in the given units; fold lower-cases the unit first
// (Redis and Docker units are case-insensitive, Kubernetes' are not).
func bytesOf(t *testing.T, what, s string, units map[string]float64, fold bool) float64 {
	t.Helper()
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s %q is not a size", what, s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s %q: %v", what, s, err)
	}
	unit := m[2]
	if fold {
		unit = strings.ToLower(unit)
	}
	mult, ok := units[unit]
	if !ok {
		t.Fatalf("%s %q: unknown unit %q", what, s, unit)
	}
	return n * mult
}

// argValue returns the value after flag in a redis-server argument list
// ("--maxmemory", "200mb"), or "" if the flag is absent.
func argValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// checkMaxmemory: Redis has a maxmemory, and it leaves at least a fifth of
// the container's memory limit for the AOF rewrite's fork, client buffers
// and fragmentation. noeviction acts only at maxmemory; without one Redis
// grows until the kernel OOM-kills it instead of refusing writes.
func checkMaxmemory(t *testing.T, what string, args []string, limitBytes float64) {
	t.Helper()
	v := argValue(args, "--maxmemory")
	if v == "" {
		t.Errorf("%s: no --maxmemory, so noeviction never takes effect and Redis is OOM-killed at its memory limit", what)
		return
	}
	maxmem := bytesOf(t, what+" --maxmemory", v, redisUnits, true)
	if maxmem <= 0 || maxmem > 0.8*limitBytes {
		t.Errorf("%s: --maxmemory %s = %.0f bytes, want above 0 and at most 80%% of the memory limit (%.0f bytes)", what, v, maxmem, limitBytes)
	}
}

// TestBytesOf: the three unit dialects differ (Redis "m" is 10^6, Docker's
// 2^20); checkMaxmemory is only as right as this.
func TestBytesOf(t *testing.T) {
	for _, c := range []struct {
		in    string
		units map[string]float64
		fold  bool
		want  float64
	}{
		{"200mb", redisUnits, true, 200 << 20},
		{"200MB", redisUnits, true, 200 << 20},
		{"200m", redisUnits, true, 200e6},
		{"1gb", redisUnits, true, 1 << 30},
		{"1048576", redisUnits, true, 1 << 20},
		{"256Mi", k8sUnits, false, 256 << 20},
		{"256M", k8sUnits, false, 256e6},
		{"1Gi", k8sUnits, false, 1 << 30},
		{"256m", dockerUnits, true, 256 << 20},
		{"1g", dockerUnits, true, 1 << 30},
	} {
		if got := bytesOf(t, "size", c.in, c.units, c.fold); got != c.want {
			t.Errorf("bytesOf(%q) = %.0f, want %.0f", c.in, got, c.want)
		}
	}
}
