package main

// Helpers that run the real isolate-bot binary as separate OS processes
// against fake Slack (real WebSockets), fake MDE + Azure AD (real TLS) and a
// real redis-server, for the multi-replica, fault and load tests in
// replicas_test.go. Nothing reaches beyond loopback.

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/fakemde"
	"github.com/soc/isolate-bot/internal/fakeslack"
	"github.com/soc/isolate-bot/internal/redistest"
	"github.com/soc/isolate-bot/internal/syncbuf"
)

// Distinctive credentials, so the secret grep cannot miss a leak.
const (
	testAppToken = "xapp-1-A0APP-424242-s3cr3tAppT0ken"
	testBotToken = "xoxb-4242-4242-s3cr3tB0tT0ken"
)

// Identities every harness allows.
const (
	chanSOC   = "C0SOC"
	analysts  = "U0ANA1,U0ANA2,U0ANA3"
	approvers = "U0MGR1,U0MGR2,U0MGR3"
)

var (
	// pkgDir is this package's directory, captured before any test changes
	// the working directory (run_test.go uses t.Chdir).
	pkgDir string

	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if pkgDir, err = os.Getwd(); err != nil {
		fmt.Fprintln(os.Stderr, "getwd:", err)
		os.Exit(1)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// botBinary builds ./cmd/bot once per test binary (a plain build: the
// children need not carry the race detector, the test process does) and
// returns its path.
func botBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
		if err != nil {
			buildErr = fmt.Errorf("the go command is needed to build the bot: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "isolate-bot-bin-"); err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out := filepath.Join(buildDir, "bot")
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, ".")
		cmd.Dir = pkgDir
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/bot: %w\n%s", err, b)
			return
		}
		buildPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// harness is one test's world: fake Slack, fake MDE, a Redis and the bot
// processes started against them.
type harness struct {
	t    *testing.T
	fs   *fakeslack.Server
	mde  *fakemde.Server
	rs   *redistest.Server
	dir  string
	cert string

	mu    sync.Mutex
	procs []*proc
	hosts int
}

type harnessOptions struct {
	slack fakeslack.Options
	redis redistest.Options
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	botBinary(t) // first: a build failure should be the first thing reported
	h := &harness{t: t, dir: t.TempDir()}
	// Registered first, so it runs last: after every process is stopped.
	t.Cleanup(h.assertNoSecrets)
	o.slack.AppToken, o.slack.BotToken = testAppToken, testBotToken
	h.fs = fakeslack.New(t, o.slack)
	h.mde = fakemde.New(t, nil)
	h.rs = redistest.StartWith(t, o.redis)
	h.cert = filepath.Join(h.dir, "fakemde.pem")
	if err := os.WriteFile(h.cert, h.mde.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// env is a complete, explicit environment for one bot process: nothing is
// inherited from the test's environment, and the working directory has no
// .env. extra are KEY, VALUE pairs that override.
func (h *harness) env(httpAddr string, extra ...string) []string {
	m := map[string]string{
		"PATH":                 "/usr/bin:/bin",
		"HOME":                 h.dir,
		"SSL_CERT_FILE":        h.cert, // trust fakemde's TLS certificate
		"SLACK_APP_TOKEN":      testAppToken,
		"SLACK_BOT_TOKEN":      testBotToken,
		"SLACK_API_URL":        h.fs.APIURL(),
		"AZURE_AUTHORITY_HOST": h.mde.URL(),
		"DEFENDER_API_URL":     h.mde.URL(),
		"AZURE_TENANT_ID":      fakemde.TenantID,
		"AZURE_CLIENT_ID":      fakemde.ClientID,
		"AZURE_CLIENT_SECRET":  fakemde.ClientSecret,
		"REDIS_URL":            "redis://" + h.rs.Addr + "/0",
		"ALLOWED_USER_IDS":     analysts,
		"APPROVER_USER_IDS":    approvers,
		"HTTP_ADDR":            httpAddr,
		"LOG_LEVEL":            "debug", // the secret grep must see the chattiest output
		"SHUTDOWN_TIMEOUT":     "10s",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// proc is one running bot process.
type proc struct {
	name string
	addr string // HTTP_ADDR
	cmd  *exec.Cmd
	out  *syncbuf.Buffer // stdout and stderr

	done    chan struct{} // closed when the process has been reaped
	waitErr error         // valid after done
}

// start launches a bot process named name (for messages) with the
// harness environment plus extra KEY, VALUE pairs. It is killed on cleanup
// if the test has not stopped it.
func (h *harness) start(name string, extra ...string) *proc {
	h.t.Helper()
	p := &proc{name: name, addr: freeAddr(h.t), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd := exec.Command(botBinary(h.t))
	cmd.Env = h.env(p.addr, extra...)
	cmd.Dir = h.t.TempDir()
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// Die with the test binary, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start %s: %v", name, err)
	}
	p.cmd = cmd
	go func() { p.waitErr = cmd.Wait(); close(p.done) }()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	h.t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logs is everything the process wrote so far.
func (p *proc) logs() string { return p.out.String() }

// tail is the end of the logs, for failure messages.
func (p *proc) tail() string {
	s := p.logs()
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

// readyz returns /readyz's status and body; 0 when nothing answers.
func (p *proc) readyz() (int, string) {
	resp, err := probeClient.Get("http://" + p.addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReadyz polls /readyz until its status is want, failing the test if
// the process exits first or the deadline passes.
func (p *proc) waitReadyz(t *testing.T, want int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var code int
	var body string
	for {
		if p.exited() {
			t.Fatalf("%s exited (%v) while waiting for /readyz %d; logs:\n%s", p.name, p.waitErr, want, p.tail())
		}
		if code, body = p.readyz(); code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz is %d %q, not %d, after %s; logs:\n%s", p.name, code, body, want, timeout, p.tail())
		}
		time.Sleep(25 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

func (p *proc) waitReady(t *testing.T) { t.Helper(); p.waitReadyz(t, http.StatusOK, 20*time.Second) }

// stop sends SIGTERM, as an orchestrator does, and requires a clean exit
// (status 0) within timeout.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %s of SIGTERM; logs:\n%s", p.name, timeout, p.tail())
	}
	if p.waitErr != nil {
		t.Errorf("%s exited with %v after SIGTERM, want status 0; logs:\n%s", p.name, p.waitErr, p.tail())
	}
}

// kill sends SIGKILL (a crash: no drain, no cleanup) and waits for the exit.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	<-p.done
}

// peakRSSMiB is the process's peak resident set size (VmHWM) so far.
func (p *proc) peakRSSMiB() (float64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "VmHWM:" && fields[2] == "kB" {
			kb, err := strconv.ParseFloat(fields[1], 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmHWM line in /proc/<pid>/status")
}

// logEntries decodes the process's JSON log lines (others are skipped).
func (p *proc) logEntries() []map[string]any {
	var out []map[string]any
	for l := range strings.SplitSeq(p.logs(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// hasLog reports whether a log entry has every field in kv (pairs).
func (p *proc) hasLog(kv ...string) bool {
	for _, e := range p.logEntries() {
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			if s, _ := e[kv[i]].(string); s != kv[i+1] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// assertNoSecrets greps every process's captured output for every
// credential. It runs on cleanup, after the processes are gone.
func (h *harness) assertNoSecrets() {
	h.mu.Lock()
	procs := append([]*proc(nil), h.procs...)
	h.mu.Unlock()
	secrets := map[string]string{
		"Slack app token":     testAppToken,
		"Slack bot token":     testBotToken,
		"Azure client secret": fakemde.ClientSecret,
		"MDE bearer token":    fakemde.Token,
	}
	for _, p := range procs {
		out := p.logs()
		if out == "" {
			h.t.Errorf("%s wrote no output at LOG_LEVEL=debug; the secret grep would prove nothing", p.name)
		}
		for what, s := range secrets {
			if strings.Contains(out, s) {
				h.t.Errorf("%s's output contains the %s", p.name, what)
			}
		}
	}
}

// addMachines adds n onboarded devices to fake MDE and returns them.
func (h *harness) addMachines(n int) []defender.Machine {
	h.t.Helper()
	out := make([]defender.Machine, 0, n)
	for range n {
		h.mu.Lock()
		h.hosts++
		i := h.hosts
		h.mu.Unlock()
		name := fmt.Sprintf("host-%03d.contoso.local", i)
		sum := sha1.Sum([]byte(name)) // 20 bytes: a 40-hex MDE machine id
		m := defender.Machine{ID: hex.EncodeToString(sum[:]), ComputerDNSName: name, OSPlatform: "Windows11",
			HealthStatus: "Active", OnboardingStatus: "Onboarded", ManagedBy: "MicrosoftDefenderForEndpoint",
			RiskScore: "High", ExposureLevel: "Medium"}
		if err := h.mde.Sim.AddMachine(m); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// isolate sends "/isolate <host> full <comment>" as user.
func (h *harness) isolate(user string, m defender.Machine) fakeslack.Envelope {
	return h.fs.SlashCommand(user, chanSOC, "/isolate", m.ComputerDNSName+" full beaconing to 203.0.113.9")
}

// roots are the channel's root messages (request cards) by host name.
func roots(ms []fakeslack.Message) map[string][]fakeslack.Message {
	out := map[string][]fakeslack.Message{}
	for _, m := range ms {
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			continue
		}
		text := m.AllText()
		i := strings.Index(text, "host-")
		if i < 0 {
			out[""] = append(out[""], m)
			continue
		}
		host := text[i:]
		if j := strings.Index(host, ".contoso.local"); j >= 0 {
			host = host[:j+len(".contoso.local")]
		}
		out[host] = append(out[host], m)
	}
	return out
}

// waitCards waits until every machine has a request card and returns them
// by host name.
func (h *harness) waitCards(ms []defender.Machine, timeout time.Duration) map[string]fakeslack.Message {
	h.t.Helper()
	var byHost map[string][]fakeslack.Message
	_, err := h.fs.WaitMessages(chanSOC, func(msgs []fakeslack.Message) bool {
		byHost = roots(msgs)
		for _, m := range ms {
			if len(byHost[m.ComputerDNSName]) == 0 {
				return false
			}
		}
		return true
	}, timeout)
	if err != nil {
		h.t.Fatalf("request cards: %v; have %d hosts with cards\n%s", err, len(byHost), h.allTails())
	}
	out := map[string]fakeslack.Message{}
	for _, m := range ms {
		out[m.ComputerDNSName] = byHost[m.ComputerDNSName][0]
	}
	return out
}

// allTails is every process's log tail, for failure messages.
func (h *harness) allTails() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, p := range h.procs {
		fmt.Fprintf(&b, "--- %s logs:\n%s\n", p.name, p.tail())
	}
	return b.String()
}

// waitUntil polls cond until it holds or timeout passes, for conditions
// nothing signals (process logs, /proc).
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// threadHas reports whether any reply's text contains sub.
func threadHas(ms []fakeslack.Message, sub string) bool { return countText(ms, sub) > 0 }

func countText(ms []fakeslack.Message, sub string) int {
	n := 0
	for _, m := range ms {
		if strings.Contains(m.AllText(), sub) {
			n++
		}
	}
	return n
}

func threadText(ms []fakeslack.Message) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString("  | " + strings.ReplaceAll(m.AllText(), "\n", " ") + "\n")
	}
	return b.String()
}
