package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/internal/syncbuf"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// inTempDir runs the test in an empty directory, so no developer's .env
// leaks in (run reads ./.env).
func inTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

// runConsoleScript pipes script through `bot console` and returns stdout.
func runConsoleScript(t *testing.T, env map[string]string, script string) (string, string, error) {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["CONSOLE_SPEED"]; !ok {
		env["CONSOLE_SPEED"] = "20" // the simulator finishes in 250 ms, polled every 50 ms
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	err := run(ctx, []string{"bot", "console"}, envOf(env), strings.NewReader(script), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// inOrder fails t unless each of steps appears in out after the previous.
func inOrder(t *testing.T, out string, steps []string) {
	t.Helper()
	rest := out
	for _, s := range steps {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("transcript lacks %q after the previous step:\n%s", s, out)
		}
		rest = rest[i+len(s):]
	}
}

// TestConsoleTryOut walks the README's try-out: a card with buttons, the
// requester's own approval refused (two-person rule), the manager's
// approval, and the MDE action followed to Succeeded after end of input.
func TestConsoleTryOut(t *testing.T) {
	inTempDir(t)
	script := strings.Join([]string{
		"/isolate web-01.contoso.local full beaconing to 203.0.113.9",
		"approve r-1",
		"as bob",
		"approve r-1",
	}, "\n") + "\n"
	out, stderr, err := runConsoleScript(t, nil, script)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
	t.Log("\n" + out)
	// Each expectation must appear after the previous one.
	steps := []string{
		"MDE:   simulator",
		"state: in memory",
		"alice (U0ANALYST, analyst), bob (U0MANAGER",
		"alice> /isolate web-01.contoso.local full beaconing to 203.0.113.9",
		"┌ r-1: isolate (Full) web-01.contoso.local, requested by @alice",
		"│ approvers: @bob",
		"└ [approve r-1] [deny r-1]",
		"alice> approve r-1",
		"(only you) You cannot approve your own request",
		"bob> approve r-1",
		"└ approved by @bob",
		"  └ r-1 ",
		"Isolate Full on web-01.contoso.local: Pending",
		"Isolate Full on web-01.contoso.local: InProgress",
		"Isolate Full on web-01.contoso.local: Succeeded",
	}
	inOrder(t, out, steps)
	// The MachineAction lines are indented under the card's thread.
	if !regexp.MustCompile(`(?m)^      MachineAction [0-9a-f-]{36} Isolate Full on web-01\.contoso\.local: Succeeded`).MatchString(out) {
		t.Error("Succeeded MachineAction line is not in the thread")
	}
	if strings.Contains(stderr, "ERR") {
		t.Errorf("errors logged:\n%s", stderr)
	}
}

// TestConsoleDenyAndHostileText: deny ends a request without an MDE call,
// and terminal control sequences in user text are neutralised.
func TestConsoleDenyAndHostileText(t *testing.T) {
	inTempDir(t)
	script := "/isolate db-01.contoso.local selective \x1b[2J\x1b[31mred <b>bold</b> & more\nas bob\ndeny r-1\nstatus r-1\nfrobnicate\nas mallory\nas U0THIRD\n"
	out, _, err := runConsoleScript(t, nil, script)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out)
	if strings.Contains(out, "\x1b") {
		t.Error("an escape character reached the terminal")
	}
	for _, want := range []string{
		"isolate (Selective) db-01.contoso.local",
		"�[2J�[31mred <b>bold</b> & more",
		"└ denied by @bob",
		`unknown command "frobnicate"`,
		`unknown user "mallory"; known: alice, bob`,
		"you are now U0THIRD",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(out, "MachineAction") {
		t.Error("a denied request reached MDE")
	}
}

// TestConsoleQuit: quit ends at once with status 0, even with work pending.
func TestConsoleQuit(t *testing.T) {
	inTempDir(t)
	start := time.Now()
	out, _, err := runConsoleScript(t, map[string]string{"CONSOLE_SPEED": "1"},
		"/isolate web-02.contoso.local full x\nas bob\napprove r-1\nquit\nhelp\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "Commands (you act") {
		t.Error("input after quit was read")
	}
	// At speed 1 the action needs 5 s to succeed; quit must not wait for it.
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("quit took %s", d)
	}
}

func TestConsoleBadSpeed(t *testing.T) {
	inTempDir(t)
	_, _, err := runConsoleScript(t, map[string]string{"CONSOLE_SPEED": "fast"}, "")
	if err == nil || !strings.Contains(err.Error(), "CONSOLE_SPEED") {
		t.Errorf("err = %v", err)
	}
}

func TestSubcommands(t *testing.T) {
	inTempDir(t)
	tests := []struct {
		args    []string
		wantOut string
		wantErr string
	}{
		{[]string{"bot", "help"}, "bot console", ""},
		{[]string{"bot", "--help"}, "bot check", ""},
		{[]string{"bot", "version"}, "isolate-bot dev", ""},
		{[]string{"bot", "launch"}, "", `unknown subcommand "launch"`},
		{[]string{"bot", "console", "extra"}, "", "takes no arguments"},
		// The bot with nothing configured names every required variable.
		{[]string{"bot"}, "", "SLACK_APP_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, envOf(nil), strings.NewReader(""), &out, io.Discard)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.wantOut)
			}
		})
	}
}

// TestDotEnvIsRead: ./.env supplies what the environment lacks, the
// environment wins, and secrets from either never reach the error.
func TestDotEnvIsRead(t *testing.T) {
	dir := inTempDir(t)
	const fileToken = "xoxb-FROM-DOTENV-s3kr1t"
	content := "SLACK_BOT_TOKEN=" + fileToken + "\nSLACK_APP_TOKEN=not-an-app-token-s3kr1t\nWORKERS=0\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"bot"}, envOf(map[string]string{"WORKERS": "2"}), strings.NewReader(""), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "SLACK_APP_TOKEN must start with xapp-") {
		t.Errorf(".env value not used: %v", msg)
	}
	if strings.Contains(msg, "WORKERS") {
		t.Errorf("the environment's WORKERS=2 should win over .env's 0: %v", msg)
	}
	if strings.Contains(msg, "s3kr1t") || strings.Contains(msg, fileToken) {
		t.Errorf("error leaks a token: %v", msg)
	}
}

// botEnv is a complete bot configuration against fake Slack and the simulator.
func botEnv(fs *fakeslack.Server, extra ...string) map[string]string {
	m := map[string]string{
		"SLACK_APP_TOKEN":   fs.AppToken(),
		"SLACK_BOT_TOKEN":   fs.BotToken(),
		"SLACK_API_URL":     fs.APIURL(),
		"DEFENDER_SIMULATE": "true",
		"ALLOWED_USER_IDS":  "U0ANALYST",
		"APPROVER_USER_IDS": "U0MANAGER",
		"LOG_LEVEL":         "warn",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func TestCheck(t *testing.T) {
	inTempDir(t)
	fs := fakeslack.New(t, fakeslack.Options{})
	rs := redistest.Start(t)

	t.Run("all ok", func(t *testing.T) {
		var out bytes.Buffer
		err := run(context.Background(), []string{"bot", "check"}, envOf(botEnv(fs, "REDIS_URL", "redis://"+rs.Addr+"/0")), nil, &out, io.Discard)
		t.Log("\n" + out.String())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ok   config: MDE simulator, Redis state", "ok   redis: PING redis://" + rs.Addr, "ok   slack api: auth.test: bot user U0BOT", "ok   slack socket mode:", "ok   azure token: skipped", "ok   mde read: skipped"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
	t.Run("failures", func(t *testing.T) {
		// A closed port for Redis and a wrong bot token: two FAIL lines, each with a hint.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		var out bytes.Buffer
		env := botEnv(fs, "REDIS_URL", "redis://:hunter2-s3kr1t@"+dead+"/0", "SLACK_BOT_TOKEN", "xoxb-wrong-s3kr1t")
		err = run(context.Background(), []string{"bot", "check"}, envOf(env), nil, &out, io.Discard)
		t.Log("\n" + out.String())
		if err == nil || !strings.Contains(err.Error(), "2 of 6 checks failed") {
			t.Fatalf("err = %v", err)
		}
		for _, re := range []string{
			`(?m)^FAIL redis: .* — check REDIS_URL`,
			`(?m)^FAIL slack api: auth.test: invalid_auth — check SLACK_BOT_TOKEN`,
			`(?m)^ok   slack socket mode:`,
		} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output does not match %s", re)
			}
		}
		if strings.Contains(out.String(), "s3kr1t") {
			t.Error("check output leaks a secret")
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		var out bytes.Buffer
		err := run(context.Background(), []string{"bot", "check"}, envOf(map[string]string{"SLACK_BOT_TOKEN": "xoxp-s3kr1t"}), nil, &out, io.Discard)
		if err == nil {
			t.Fatal("check passed with an invalid configuration")
		}
		if !strings.HasPrefix(out.String(), "FAIL config:") || !strings.Contains(out.String(), "SLACK_BOT_TOKEN must start with xoxb-") || strings.Contains(out.String(), "s3kr1t") {
			t.Errorf("output:\n%s", out.String())
		}
	})
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBotServesAndStops runs the real bot against fake Slack, the
// simulator and a real Redis: it becomes ready, handles a slash command
// end to end, serves metrics, and returns nil on SIGTERM.
func TestBotServesAndStops(t *testing.T) {
	inTempDir(t)
	fs := fakeslack.New(t, fakeslack.Options{})
	rs := redistest.Start(t)
	addr := freeAddr(t)
	env := botEnv(fs, "REDIS_URL", "redis://"+rs.Addr+"/0", "HTTP_ADDR", addr, "SHUTDOWN_TIMEOUT", "4s", "REDIS_PREFIX", "botstop")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"bot"}, envOf(env), nil, io.Discard, &stderr) }()

	waitReady(t, "http://"+addr+"/readyz", done)

	// The Docker HEALTHCHECK subcommand sees the running bot.
	if err := run(ctx, []string{"bot", "healthz"}, envOf(env), nil, io.Discard, io.Discard); err != nil {
		t.Errorf("healthz while running: %v", err)
	}

	fs.SlashCommand("U0ANALYST", "C0SOC", "/isolate", "web-01.contoso.local full beaconing")
	msgs, err := fs.WaitMessages("C0SOC", func(ms []fakeslack.Message) bool { return len(ms) > 0 }, 10*time.Second)
	if err != nil {
		t.Fatalf("no request card posted: %v\nlogs:\n%s", err, stderr.String())
	}
	if !strings.Contains(msgs[0].AllText(), "web-01.contoso.local") {
		t.Errorf("card text: %s", msgs[0].AllText())
	}
	// The pending request shows up in the shared store's gauge.
	body := get(t, "http://"+addr+"/metrics")
	if !strings.Contains(body, "isolatebot_pending_requests 1") {
		t.Errorf("metrics lack the pending request:\n%s", grepLines(body, "isolatebot_"))
	}
	if n, err := rs.Client().Exists(context.Background(), "{botstop}:req:r-1").Result(); err != nil || n != 1 {
		t.Errorf("request not in Redis: n=%d err=%v", n, err)
	}

	// SIGTERM, as Kubernetes sends it: run's NotifyContext catches it.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after a clean stop\nlogs:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if err := run(context.Background(), []string{"bot", "healthz"}, envOf(env), nil, io.Discard, io.Discard); err == nil {
		t.Error("healthz succeeds after shutdown")
	}
}

func TestBotFailsFastOnTakenPort(t *testing.T) {
	inTempDir(t)
	fs := fakeslack.New(t, fakeslack.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"bot"}, envOf(botEnv(fs, "HTTP_ADDR", ln.Addr().String())), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP_ADDR") {
		t.Errorf("err = %v", err)
	}
}

func TestBotFailsOnUnreachableRedis(t *testing.T) {
	inTempDir(t)
	fs := fakeslack.New(t, fakeslack.Options{})
	env := botEnv(fs, "REDIS_URL", "redis://:pw-s3kr1t@"+freeAddr(t)+"/0", "HTTP_ADDR", freeAddr(t))
	err := run(context.Background(), []string{"bot"}, envOf(env), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "check REDIS_URL") || strings.Contains(err.Error(), "s3kr1t") {
		t.Errorf("err = %v", err)
	}
}

// waitReady polls url until it answers 200, failing if run returns first.
func waitReady(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
	t.Fatalf("not ready within 15s: %s", last)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
