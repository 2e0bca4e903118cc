package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/rs/zerolog"
)

// TestPublicDefaults pins each variable's documented default (README.md,
// .env.example): leaving a variable unset must load exactly what setting it
// to its documented default loads.
func TestPublicDefaults(t *testing.T) {
	unset, err := Load(lookup(minimal()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, documented string }{
		{"SLACK_API_URL", "https://slack.com/api/"},
		{"AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com"},
		{"DEFENDER_API_URL", "https://api.securitycenter.microsoft.com"},
		{"REDIS_PREFIX", "isolate-bot"},
		{"RATE_LIMIT_PER_MINUTE", "100"},
		{"RATE_LIMIT_PER_HOUR", "1500"},
		{"APPROVAL_TTL", "1h"},
		{"AUDIT_RETENTION", "720h"},
		{"QUEUE_MAX_WAIT", "2h"},
		{"MDE_CALL_TIMEOUT", "30s"},
		{"WORKERS", "16"},
		{"SHUTDOWN_TIMEOUT", "25s"},
		{"HTTP_ADDR", ":8080"},
		{"LOG_LEVEL", "info"},
		{"LOG_FORMAT", "json"},
		{"PROTECTED_MACHINES", ""},
		{"PROTECTED_MODE", "two-approvers"},
	} {
		set, err := Load(lookup(with(minimal(), c.name, c.documented)))
		if err != nil {
			t.Fatalf("%s=%s: %v", c.name, c.documented, err)
		}
		if !reflect.DeepEqual(set, unset) {
			t.Errorf("%s unset loads\n%s\nbut %s=%s loads\n%s", c.name, unset.Redacted(), c.name, c.documented, set.Redacted())
		}
	}
	// DEFENDER_SIMULATE is false by default: without it the bot needs Azure.
	env := minimal()
	delete(env, "DEFENDER_SIMULATE")
	if _, err := Load(lookup(env)); err == nil || !strings.Contains(err.Error(), "AZURE_TENANT_ID") {
		t.Errorf("DEFENDER_SIMULATE unset: want Azure variables required, got %v", err)
	}
}

// TestEnvKeepsPrefilledFields is the behaviour of caarlos0/env that
// defaultRaw relies on: a field keeps its pre-set value when its variable
// is unset, and takes the variable's value when it is set.
func TestEnvKeepsPrefilledFields(t *testing.T) {
	type fields struct {
		S string        `env:"S"`
		N int           `env:"N"`
		D time.Duration `env:"D"`
		B bool          `env:"B"`
	}
	pre := fields{S: "kept", N: 7, D: 3 * time.Second, B: true}
	for _, c := range []struct {
		name    string
		environ map[string]string
		want    fields
	}{
		{"unset keeps", map[string]string{}, pre},
		{"set replaces", map[string]string{"S": "new", "N": "9", "D": "1m", "B": "false"}, fields{"new", 9, time.Minute, false}},
		{"one set", map[string]string{"N": "0"}, fields{"kept", 0, 3 * time.Second, true}},
	} {
		got := pre
		if err := env.ParseWithOptions(&got, env.Options{Environment: c.environ}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestFixedValues: every fixed value is set in both modes (the packages
// refuse zero values), and the console runs its quicker timings.
func TestFixedValues(t *testing.T) {
	bot, err := Load(lookup(minimal()))
	if err != nil {
		t.Fatal(err)
	}
	con, err := LoadConsole(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{"bot": bot, "console": con} {
		v := reflect.ValueOf(c.Fixed)
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Errorf("%s: Fixed.%s is zero", name, v.Type().Field(i).Name)
			}
		}
	}
	if !reflect.DeepEqual(bot.Fixed, DefaultFixed()) {
		t.Errorf("bot fixed values %+v, want DefaultFixed %+v", bot.Fixed, DefaultFixed())
	}
	if bot.CommandTimeout != 20*time.Second || bot.PollInterval != 10*time.Second || bot.ReadyCheckTimeout >= time.Second {
		t.Errorf("bot: command timeout %s, poll interval %s, readiness check %s; the README documents 20s, 10s and under 1s",
			bot.CommandTimeout, bot.PollInterval, bot.ReadyCheckTimeout)
	}
	if con.PollInterval != ConsolePollInterval || con.SchedulerEvery != ConsoleSchedulerEvery {
		t.Errorf("console timings: poll every %s, scheduler %s", con.PollInterval, con.SchedulerEvery)
	}
}

func TestConsoleLogDefaults(t *testing.T) {
	for _, c := range []struct {
		env        map[string]string
		wantLevel  zerolog.Level
		wantFormat string
	}{
		{nil, zerolog.WarnLevel, "console"},
		{map[string]string{"LOG_LEVEL": "debug", "LOG_FORMAT": "json"}, zerolog.DebugLevel, "json"},
	} {
		cfg, err := LoadConsole(lookup(c.env))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.LogLevel != c.wantLevel || cfg.LogFormat != c.wantFormat {
			t.Errorf("console with %v: level %s format %s, want %s %s", c.env, cfg.LogLevel, cfg.LogFormat, c.wantLevel, c.wantFormat)
		}
	}
}

// TestParseProblemExample: a value env cannot convert is answered with the
// variable's default as the example.
func TestParseProblemExample(t *testing.T) {
	for _, c := range []struct{ name, value, want string }{
		{"WORKERS", "many", "e.g. 16"},
		{"AUDIT_RETENTION", "a month", "or 720h"},
		{"MDE_CALL_TIMEOUT", "slow", "or 30s"},
		{"SHUTDOWN_TIMEOUT", "x", "or 25s"},
	} {
		_, err := Load(lookup(with(minimal(), c.name, c.value)))
		var ps Problems
		if !asProblems(err, &ps) || len(ps) != 1 || ps[0].Var != c.name || !strings.HasSuffix(ps[0].Msg, c.want) {
			t.Errorf("%s=%s: got %v, want one problem ending %q", c.name, c.value, err, c.want)
		}
	}
}

// TestFixedValuesDocumented: README.md's "Fixed values" table states the
// values this package sets.
func TestFixedValuesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for line := range strings.SplitSeq(string(readme), "\n") {
		if cells := strings.Split(line, " | "); len(cells) >= 2 && strings.HasPrefix(line, "| ") {
			rows[strings.TrimPrefix(cells[0], "| ")] = cells[1]
		}
	}
	for _, c := range []struct {
		row  string
		want []string
	}{
		{"Command timeout", []string{human(DefaultCommandTimeout)}},
		{"Status polling", []string{"every " + human(DefaultPollInterval), "first " + human(DefaultPollFastFor), "up to every " + human(DefaultPollMaxInterval), "FOLLOW_FOR"}},
		{"Scheduler pass", []string{"every " + human(DefaultSchedulerEvery)}},
		{"User-group cache", []string{human(DefaultGroupCacheTTL)}},
		{"Delivery de-duplication", []string{human(DefaultDedupTTL)}},
		{"Work queues", []string{fmt.Sprintf("%d commands, %d click workers with %d queued", DefaultCommandQueue, DefaultClickWorkers, DefaultClickQueue)}},
		{"Rate-limit windows", []string{human(DefaultRateLimitMinute) + " and " + human(DefaultRateLimitHour)}},
		{"MDE read retries", []string{fmt.Sprintf("%d attempts", DefaultMDEMaxGetAttempts), "backoff " + human(DefaultMDEBaseBackoff) + " to " + human(DefaultMDEMaxBackoff), "up to " + human(DefaultMDEMaxRetryAfterWait)}},
		{"Global audit stream", []string{fmt.Sprintf("about %d entries", DefaultAuditMaxLen), "AUDIT_RETENTION"}},
		{"Readiness checks", []string{human(DefaultReadyCheckTimeout) + " each"}},
		{"`bot check`", []string{human(DefaultBotCheckTimeout) + " per check"}},
		{"Redis at start-up", []string{human(DefaultRedisStartTimeout)}},
		{"Slack Web API call", []string{human(DefaultSlackCallTimeout)}},
	} {
		got, ok := rows[c.row]
		if !ok {
			t.Errorf("README.md's fixed values lack the row %q", c.row)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("README.md says %q for %s; want it to contain %q", got, c.row, w)
			}
		}
	}
}

// human writes d as the README does: 90 days, 1 h, 5 min, 20 s, 0.7 s.
func human(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d > 24*time.Hour:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return fmt.Sprintf("%g s", d.Seconds())
}
