package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/internal/protect"

	"github.com/soc/isolate-bot/defender"
)

// Values that must never appear in an error or in Redacted output.
const (
	appToken     = "xapp-1-A0SECRET-123-abcdefabcdef"
	botToken     = "xoxb-1111-2222-SECRETBOTTOKEN"
	clientSecret = "Zq8~SECRET.client-secret_value"
	redisPass    = "redis-SECRET-pass"
	clientID     = "11111111-2222-3333-4444-555555555555"
	tenantID     = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

func lookup(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// minimal is the smallest valid bot environment.
func minimal() map[string]string {
	return map[string]string{
		"SLACK_APP_TOKEN":   appToken,
		"SLACK_BOT_TOKEN":   botToken,
		"ALLOWED_USER_IDS":  "U0AAA",
		"APPROVER_USER_IDS": "U0BBB",
		"DEFENDER_SIMULATE": "true",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestDefaults(t *testing.T) {
	c, err := Load(lookup(minimal()))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"SLACK_API_URL", c.SlackAPIURL, DefaultSlackAPIURL},
		{"AZURE_AUTHORITY_HOST", c.AzureAuthorityHost, DefaultAuthorityHost},
		{"DEFENDER_API_URL", c.DefenderAPIURL, DefaultDefenderAPIURL},
		{"DEFENDER_SCOPE", c.DefenderScope, "https://api.securitycenter.microsoft.com/.default"},
		{"DEFENDER_SIMULATE", c.DefenderSimulate, true},
		{"REDIS_URL", c.UseRedis(), false},
		{"RedisOptions", c.RedisOptions() == nil, true},
		{"REDIS_PREFIX", c.RedisPrefix, DefaultRedisPrefix},
		{"ALLOWED_CHANNEL_IDS", len(c.AllowedChannelIDs), 0},
		{"RATE_LIMIT_PER_MINUTE", c.RateLimitPerMinute, DefaultPerMinute},
		{"RATE_LIMIT_PER_HOUR", c.RateLimitPerHour, DefaultPerHour},
		{"APPROVAL_TTL", c.ApprovalTTL, DefaultApprovalTTL},
		{"AUDIT_RETENTION", c.AuditRetention, DefaultAuditRetention},
		{"QUEUE_MAX_WAIT", c.QueueMaxWait, DefaultQueueMaxWait},
		{"MDE_CALL_TIMEOUT", c.MDECallTimeout, DefaultMDECallTimeout},
		{"FOLLOW_FOR", c.FollowFor, DefaultFollowFor},
		{"BULK_MAX", c.BulkMax, DefaultBulkMax},
		{"BULK_TWO_APPROVERS_OVER", c.BulkTwoApproversOver, DefaultBulkTwoApproversOver},
		{"WORKERS", c.Workers, DefaultWorkers},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, DefaultShutdownTimeout},
		{"HTTP_ADDR", c.HTTPAddr, DefaultHTTPAddr},
		{"LOG_LEVEL", c.LogLevel, zerolog.InfoLevel},
		{"LOG_FORMAT", c.LogFormat, "json"},
		{"Mode", c.Mode, ModeBot},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestEveryVariable(t *testing.T) {
	certPath := writeCert(t, certRSA)
	m := map[string]string{
		"SLACK_APP_TOKEN":               appToken,
		"SLACK_BOT_TOKEN":               botToken,
		"SLACK_API_URL":                 "https://slack-gov.com/api", // trailing slash added
		"AZURE_TENANT_ID":               tenantID,
		"AZURE_CLIENT_ID":               clientID,
		"AZURE_CLIENT_CERTIFICATE_PATH": certPath,
		"AZURE_AUTHORITY_HOST":          "https://login.microsoftonline.us/",
		"DEFENDER_API_URL":              "https://api-gov.securitycenter.microsoft.us/",
		"DEFENDER_SIMULATE":             "false",
		"REDIS_URL":                     "redis://:" + redisPass + "@redis.internal:6380/2",
		"REDIS_PREFIX":                  "soc-a",
		"ALLOWED_USER_IDS":              " U01, W02 ,S03,U01", // spaces trimmed, duplicate dropped
		"APPROVER_USER_IDS":             "U09,S0MANAGERS",
		"ALLOWED_CHANNEL_IDS":           "C0SOC,G0PRIV",
		"PROTECTED_MACHINES":            "dc*.contoso.local, tag:Tier0",
		"PROTECTED_MODE":                "Refuse",
		"RATE_LIMIT_PER_MINUTE":         "50",
		"RATE_LIMIT_PER_HOUR":           "700",
		"APPROVAL_TTL":                  "30m",
		"AUDIT_RETENTION":               "2160h",
		"QUEUE_MAX_WAIT":                "10m",
		"MDE_CALL_TIMEOUT":              "7s",
		"FOLLOW_FOR":                    "24h",
		"BULK_MAX":                      "50",
		"BULK_TWO_APPROVERS_OVER":       "3",
		"WORKERS":                       "4",
		"SHUTDOWN_TIMEOUT":              "5s",
		"HTTP_ADDR":                     "127.0.0.1:9090",
		"LOG_LEVEL":                     "DEBUG",
		"LOG_FORMAT":                    "console",
	}
	// Every variable the package reads is exercised here.
	for _, name := range Variables() {
		if _, ok := m[name]; !ok && name != "AZURE_CLIENT_SECRET" && name != "DEFENDER_SCOPE" {
			t.Errorf("test does not set %s", name)
		}
	}
	c, err := Load(lookup(m))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"SLACK_APP_TOKEN", c.SlackAppToken.Reveal(), appToken},
		{"SLACK_BOT_TOKEN", c.SlackBotToken.Reveal(), botToken},
		{"SLACK_API_URL", c.SlackAPIURL, "https://slack-gov.com/api/"},
		{"AZURE_TENANT_ID", c.AzureTenantID, tenantID},
		{"AZURE_CLIENT_ID", c.AzureClientID, clientID},
		{"AZURE_CLIENT_CERTIFICATE_PATH", c.AzureCertificatePath, certPath},
		{"certificates", len(c.AzureCertificates), 1},
		{"PEM kept for MSAL", strings.Contains(c.AzureCertificatePEM.Reveal(), "PRIVATE KEY"), true},
		{"AZURE_AUTHORITY_HOST", c.AzureAuthorityHost, "https://login.microsoftonline.us"},
		{"Authority", c.Authority(), "https://login.microsoftonline.us/" + tenantID},
		{"DEFENDER_API_URL", c.DefenderAPIURL, "https://api-gov.securitycenter.microsoft.us"},
		{"DEFENDER_SCOPE derived", c.DefenderScope, "https://api-gov.securitycenter.microsoft.us/.default"},
		{"DEFENDER_SIMULATE", c.DefenderSimulate, false},
		{"REDIS addr", c.RedisOptions().Addrs[0], "redis.internal:6380"},
		{"REDIS db", c.RedisOptions().DB, 2},
		{"REDIS password", c.RedisOptions().Password, redisPass},
		{"REDIS_PREFIX", c.RedisPrefix, "soc-a"},
		{"ALLOWED_USER_IDS", strings.Join(c.AllowedUserIDs, ","), "U01,W02,S03"},
		{"APPROVER_USER_IDS", strings.Join(c.ApproverUserIDs, ","), "U09,S0MANAGERS"},
		{"ALLOWED_CHANNEL_IDS", strings.Join(c.AllowedChannelIDs, ","), "C0SOC,G0PRIV"},
		{"PROTECTED_MACHINES", c.ProtectedMachines.Len(), 2},
		{"PROTECTED_MODE", c.ProtectedMode, protect.Refuse},
		{"RATE_LIMIT_PER_MINUTE", c.RateLimitPerMinute, 50},
		{"RATE_LIMIT_PER_HOUR", c.RateLimitPerHour, 700},
		{"APPROVAL_TTL", c.ApprovalTTL, 30 * time.Minute},
		{"AUDIT_RETENTION", c.AuditRetention, 2160 * time.Hour},
		{"QUEUE_MAX_WAIT", c.QueueMaxWait, 10 * time.Minute},
		{"MDE_CALL_TIMEOUT", c.MDECallTimeout, 7 * time.Second},
		{"FOLLOW_FOR", c.FollowFor, 24 * time.Hour},
		{"BULK_MAX", c.BulkMax, 50},
		{"BULK_TWO_APPROVERS_OVER", c.BulkTwoApproversOver, 3},
		{"WORKERS", c.Workers, 4},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 5 * time.Second},
		{"HTTP_ADDR", c.HTTPAddr, "127.0.0.1:9090"},
		{"LOG_LEVEL", c.LogLevel, zerolog.DebugLevel},
		{"LOG_FORMAT", c.LogFormat, "console"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	// An explicit scope wins over the derived one; a client secret works too.
	m2 := with(m, "AZURE_CLIENT_CERTIFICATE_PATH", "", "AZURE_CLIENT_SECRET", clientSecret,
		"DEFENDER_SCOPE", "https://securitycenter.onmicrosoft.com/windowsatpservice/.default")
	c, err = Load(lookup(m2))
	if err != nil {
		t.Fatal(err)
	}
	if c.DefenderScope != "https://securitycenter.onmicrosoft.com/windowsatpservice/.default" || c.AzureClientSecret.Reveal() != clientSecret {
		t.Errorf("scope %q secret ok=%v", c.DefenderScope, c.AzureClientSecret.Reveal() == clientSecret)
	}

	// A geo host asks for the commercial scope, not one for its own host
	// (no such resource exists in Entra).
	m3 := with(m, "AZURE_CLIENT_CERTIFICATE_PATH", "", "AZURE_CLIENT_SECRET", clientSecret,
		"DEFENDER_API_URL", "https://eu.api.security.microsoft.com", "AZURE_AUTHORITY_HOST", "")
	if c3, err := Load(lookup(m3)); err != nil || c3.DefenderScope != "https://api.securitycenter.microsoft.com/.default" {
		t.Errorf("geo host: scope %q, err %v; want the commercial scope", c3.DefenderScope, err)
	}

	// Redacted names every variable and leaks none of the secrets, even
	// with a certificate loaded.
	c.AzureCertificatePEM = Secret(certFiles[certRSA])
	out := c.Redacted() + fmt.Sprintf("%v %+v %#v %s", c, c, c, c)
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("output leaks the certificate's private key")
	}
	for _, name := range Variables() {
		if !strings.Contains(out, name+"=") {
			t.Errorf("Redacted lacks %s", name)
		}
	}
	assertNoSecret(t, out)
}

// TestDocumentation: README.md and .env.example document every variable,
// and .env.example copied to .env gives a working console and a bot that
// asks only for the required variables.
func TestDocumentation(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Variables() {
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("README.md configuration table lacks %s", name)
		}
		if !strings.Contains("\n"+string(example), "\n"+name+"=") {
			t.Errorf(".env.example lacks %s", name)
		}
	}
	get, err := WithDotEnv("../../.env.example", lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	// The console keeps its terminal-friendly logging (warn, console) only
	// while these are unset: after `cp .env.example .env` they must be.
	for _, name := range []string{"LOG_LEVEL", "LOG_FORMAT"} {
		if v := get(name); v != "" {
			t.Errorf(".env.example sets %s=%s, which overrides the console's own logging", name, v)
		}
	}
	if _, err := LoadConsole(get); err != nil {
		t.Errorf(".env.example does not give a working console: %v", err)
	}
	_, err = Load(get)
	var ps Problems
	if !asProblems(err, &ps) {
		t.Fatalf("bot with .env.example: %v", err)
	}
	want := []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH", "ALLOWED_USER_IDS", "APPROVER_USER_IDS"}
	if !slices.Equal(ps.Vars(), want) {
		t.Errorf("bot with .env.example: problems for %v, want only the required %v", ps.Vars(), want)
	}
}

func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{appToken, botToken, clientSecret, redisPass} {
		if strings.Contains(s, secret) {
			t.Errorf("output leaks %q:\n%s", secret, s)
		}
	}
}

func TestSecretFormatting(t *testing.T) {
	s := Secret(botToken)
	js, _ := json.Marshal(struct{ T Secret }{s})
	out := fmt.Sprintf("%v|%s|%q|%#v|%x|%d|%+v", s, s, s, s, s, s, struct{ T Secret }{s}) + string(js)
	assertNoSecret(t, out)
	if !strings.Contains(out, "[redacted]") {
		t.Errorf("no mask in %q", out)
	}
	if fmt.Sprint(Secret("")) != "" {
		t.Error("empty secret should print empty, to show it is unset")
	}
}

func TestDotEnvPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	content := "# local development\nSLACK_BOT_TOKEN=xoxb-from-file\nWORKERS=3\nexport LOG_LEVEL=debug\nREDIS_PREFIX=\"quoted value\"\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := map[string]string{"SLACK_BOT_TOKEN": "xoxb-from-env", "LOG_LEVEL": ""}
	get, err := WithDotEnv(path, lookup(proc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, want string }{
		{"SLACK_BOT_TOKEN", "xoxb-from-env"}, // environment wins
		{"WORKERS", "3"},                     // only in the file
		{"LOG_LEVEL", "debug"},               // empty in the environment counts as unset
		{"REDIS_PREFIX", "quoted value"},
		{"HTTP_ADDR", ""},
	}
	for _, tt := range tests {
		if got := get(tt.name); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, got, tt.want)
		}
	}
	if proc["WORKERS"] != "" {
		t.Error("the environment map was modified")
	}

	// A missing file leaves the lookup as it was.
	get, err = WithDotEnv(filepath.Join(dir, "absent.env"), lookup(proc))
	if err != nil || get("SLACK_BOT_TOKEN") != "xoxb-from-env" || get("WORKERS") != "" {
		t.Errorf("missing file: err=%v", err)
	}
	// A directory is reported, naming the path.
	if _, err := WithDotEnv(dir, lookup(proc)); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory as .env: err=%v", err)
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	m := map[string]string{
		"SLACK_APP_TOKEN":       botToken, // swapped tokens: a common mistake
		"SLACK_BOT_TOKEN":       appToken,
		"SLACK_API_URL":         "http://slack.example.com/api/",
		"AZURE_CLIENT_SECRET":   clientSecret,
		"AZURE_AUTHORITY_HOST":  "login.microsoftonline.com",
		"DEFENDER_API_URL":      "ftp://api.securitycenter.microsoft.com",
		"DEFENDER_SCOPE":        "not a scope",
		"REDIS_URL":             "redis://user:" + redisPass + "@host:6379/notanumber",
		"REDIS_PREFIX":          "has space",
		"ALLOWED_USER_IDS":      "alice",
		"APPROVER_USER_IDS":     "",
		"ALLOWED_CHANNEL_IDS":   "#soc",
		"RATE_LIMIT_PER_MINUTE": "0",
		"RATE_LIMIT_PER_HOUR":   "many",
		"APPROVAL_TTL":          "1 hour",
		"AUDIT_RETENTION":       "-1h",
		"QUEUE_MAX_WAIT":        "0s",
		"MDE_CALL_TIMEOUT":      "-1s",
		"FOLLOW_FOR":            "0s",
		"WORKERS":               "-2",
		"SHUTDOWN_TIMEOUT":      "soon",
		"HTTP_ADDR":             "8080",
		"LOG_LEVEL":             "loud",
		"LOG_FORMAT":            "xml",
		"DEFENDER_SIMULATE":     "perhaps",
	}
	_, err := Load(lookup(m))
	if err == nil {
		t.Fatal("Load accepted an invalid configuration")
	}
	var ps Problems
	if !asProblems(err, &ps) {
		t.Fatalf("error is %T, want Problems", err)
	}
	msg := err.Error()
	// DEFENDER_SIMULATE failed to parse, so Azure is checked as well.
	for _, name := range []string{
		"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "SLACK_API_URL", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
		"AZURE_AUTHORITY_HOST", "DEFENDER_API_URL", "DEFENDER_SCOPE", "DEFENDER_SIMULATE",
		"REDIS_URL", "REDIS_PREFIX", "ALLOWED_USER_IDS", "APPROVER_USER_IDS", "ALLOWED_CHANNEL_IDS",
		"RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_PER_HOUR", "APPROVAL_TTL", "AUDIT_RETENTION",
		"QUEUE_MAX_WAIT", "MDE_CALL_TIMEOUT", "FOLLOW_FOR", "WORKERS", "SHUTDOWN_TIMEOUT", "HTTP_ADDR", "LOG_LEVEL", "LOG_FORMAT",
	} {
		if !slices.Contains(ps.Vars(), name) {
			t.Errorf("no problem reported for %s", name)
		}
	}
	for _, want := range []string{"must start with xapp-", "must start with xoxb-", "must use https://"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	assertNoSecret(t, msg)
	t.Log(msg)
}

func asProblems(err error, ps *Problems) bool { return errors.As(err, ps) }

func TestAzureRequirements(t *testing.T) {
	real := with(minimal(), "DEFENDER_SIMULATE", "false")
	tests := []struct {
		name  string
		env   map[string]string
		wants []string // variables expected in the problems; empty: valid
	}{
		{"missing Azure without simulate is an error", real,
			[]string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"}},
		{"simulate needs no Azure", minimal(), nil},
		{"secret", with(real, "AZURE_TENANT_ID", "contoso.onmicrosoft.com", "AZURE_CLIENT_ID", clientID, "AZURE_CLIENT_SECRET", clientSecret), nil},
		{"secret and certificate", with(real, "AZURE_TENANT_ID", tenantID, "AZURE_CLIENT_ID", clientID, "AZURE_CLIENT_SECRET", clientSecret, "AZURE_CLIENT_CERTIFICATE_PATH", "/x.pem"),
			[]string{"AZURE_CLIENT_SECRET"}},
		{"client id not a GUID", with(real, "AZURE_TENANT_ID", tenantID, "AZURE_CLIENT_ID", "my-app", "AZURE_CLIENT_SECRET", clientSecret),
			[]string{"AZURE_CLIENT_ID"}},
		{"tenant with a slash", with(real, "AZURE_TENANT_ID", "a/b", "AZURE_CLIENT_ID", clientID, "AZURE_CLIENT_SECRET", clientSecret),
			[]string{"AZURE_TENANT_ID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(lookup(tt.env))
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ps Problems
			if !asProblems(err, &ps) {
				t.Fatalf("err = %v, want Problems", err)
			}
			if !slices.Equal(ps.Vars(), tt.wants) {
				t.Errorf("problems for %v, want %v\n%v", ps.Vars(), tt.wants, err)
			}
			assertNoSecret(t, err.Error())
		})
	}
}

func TestURLs(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://api.security.microsoft.com", true},
		{"https://eu.api.security.microsoft.com/", true},
		{"http://127.0.0.1:8443", true},
		{"http://127.0.0.1", true},
		{"http://localhost:1234/api/", true},
		{"http://[::1]:99", true},
		{"http://api.security.microsoft.com", false},
		{"http://127.0.0.1.nip.io", false},
		{"http://localhost.evil.com", false},
		{"http://10.0.0.1", false},
		{"api.security.microsoft.com", false},
		{"https://", false},
		{"https://user:pw@host", false},
		{"https://host/?x=1", false},
		{"gopher://host", false},
	}
	for _, tt := range tests {
		for _, name := range []string{"SLACK_API_URL", "DEFENDER_API_URL"} {
			_, err := Load(lookup(with(minimal(), name, tt.url)))
			if (err == nil) != tt.ok {
				t.Errorf("%s=%s: err=%v, want ok=%v", name, tt.url, err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("%s: error echoes URL credentials: %v", name, err)
			}
		}
	}
	c, err := Load(lookup(with(minimal(), "DEFENDER_API_URL", "http://127.0.0.1:4567/")))
	if err != nil {
		t.Fatal(err)
	}
	if c.DefenderScope != "http://127.0.0.1:4567/.default" || c.DefenderAPIURL != "http://127.0.0.1:4567" {
		t.Errorf("loopback: scope %q api %q", c.DefenderScope, c.DefenderAPIURL)
	}
}

// Certificates are generated once per test binary: RSA key generation is slow.
var (
	certOnce  sync.Once
	certFiles map[string][]byte
)

const (
	certRSA       = "rsa"
	certNoKey     = "nokey"
	certKeyOnly   = "keyonly"
	certWrongKey  = "wrongkey"
	certECDSA     = "ecdsa"
	certGarbage   = "garbage"
	certEncrypted = "encrypted"
)

func writeCert(t *testing.T, kind string) string {
	t.Helper()
	certOnce.Do(func() { certFiles = makeCerts(t) })
	path := filepath.Join(t.TempDir(), kind+".pem")
	if err := os.WriteFile(path, certFiles[kind], 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func makeCerts(t *testing.T) map[string][]byte {
	t.Helper()
	key1, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key2, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "isolate-bot"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	certPEM := func(pub, priv any) []byte {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyPEM := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	c1 := certPEM(&key1.PublicKey, key1)
	return map[string][]byte{
		certRSA:      append(append([]byte{}, c1...), keyPEM(key1)...),
		certNoKey:    c1,
		certKeyOnly:  keyPEM(key1),
		certWrongKey: append(append([]byte{}, c1...), keyPEM(key2)...),
		certECDSA:    append(certPEM(&ec.PublicKey, ec), keyPEM(ec)...),
		certGarbage:  []byte("not a pem file\n"),
		certEncrypted: append(append([]byte{}, c1...), pem.EncodeToMemory(&pem.Block{
			Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1, 2, 3},
		})...),
	}
}

func TestCertificateFile(t *testing.T) {
	tests := []struct {
		kind string
		want string // substring of the problem; empty: valid
	}{
		{certRSA, ""},
		{certNoKey, "no private key"},
		{certKeyOnly, "no certificates"},
		{certWrongKey, "matches none of its certificates"},
		{certECDSA, "not RSA"},
		{certGarbage, "no certificates"},
		{certEncrypted, "encrypted"},
		{"missing", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "missing.pem")
			if tt.kind != "missing" {
				path = writeCert(t, tt.kind)
			}
			env := with(minimal(), "DEFENDER_SIMULATE", "false", "AZURE_TENANT_ID", tenantID,
				"AZURE_CLIENT_ID", clientID, "AZURE_CLIENT_CERTIFICATE_PATH", path)
			c, err := Load(lookup(env))
			if tt.want == "" {
				if err != nil || len(c.AzureCertificates) != 1 || c.AzureCertificatePEM == "" {
					t.Fatalf("err=%v certs=%d", err, len(c.AzureCertificates))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "AZURE_CLIENT_CERTIFICATE_PATH") {
				t.Fatalf("err = %v, want AZURE_CLIENT_CERTIFICATE_PATH problem containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error echoes PEM content: %v", err)
			}
		})
	}
}

func TestRedisURL(t *testing.T) {
	tests := []struct {
		url      string
		addrs    []string
		db       int
		master   string
		cluster  bool
		tls      bool
		password string
		wantErr  string
	}{
		{url: "redis://localhost:6379/0", addrs: []string{"localhost:6379"}},
		{url: "redis://redis.internal/3", addrs: []string{"redis.internal:6379"}, db: 3},
		{url: "rediss://default:" + redisPass + "@cache.example.com:6380", addrs: []string{"cache.example.com:6380"}, tls: true, password: redisPass},
		{url: "redis://127.0.0.1:6379/1?dial_timeout=3&pool_size=20", addrs: []string{"127.0.0.1:6379"}, db: 1},
		{url: "unix:///run/redis/redis.sock", addrs: []string{"/run/redis/redis.sock"}},
		{url: "redis://s1:26379/0?master_name=mymaster&addr=s2:26379&addr=s3:26379", addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, master: "mymaster"},
		// Sentinel: userinfo would be the sentinels' password, password= is the master's.
		{url: "redis://?master_name=mymaster&addr=s1:26379&password=" + redisPass, addrs: []string{"localhost:6379", "s1:26379"}, master: "mymaster", password: redisPass},
		{url: "redis://n1:6379?addr=n2:6379&addr=n3:6379", addrs: []string{"n1:6379", "n2:6379", "n3:6379"}, cluster: true},
		{url: "rediss://n1:6379?addr=n2:6379", addrs: []string{"n1:6379", "n2:6379"}, cluster: true, tls: true},
		{url: "http://localhost:6379", wantErr: "invalid URL scheme"},
		{url: "redis://localhost/abc", wantErr: "invalid database number"},
		{url: "redis://localhost?bogus=1", wantErr: "bogus"},
		// Parsed by go-redis but not carried into the client: refused, not dropped.
		{url: "redis://localhost?max_concurrent_dials=4", wantErr: "max_concurrent_dials is not supported"},
		{url: "redis://n1:6379?addr=n2:6379&pipeline_pool_size=9", wantErr: "pipeline_pool_size is not supported"},
		{url: "redis://u:" + redisPass + "@local host:1", wantErr: "not a valid URL"},
		{url: "redis://h?master_name=&addr=s:1", wantErr: "master_name"},
	}
	for _, tt := range tests {
		t.Run(RedactRedisURL(tt.url), func(t *testing.T) {
			o, err := ParseRedisURL(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				assertNoSecret(t, err.Error())
				// Through Load the problem names the variable.
				_, lerr := Load(lookup(with(minimal(), "REDIS_URL", tt.url)))
				if lerr == nil || !strings.Contains(lerr.Error(), "REDIS_URL") {
					t.Errorf("Load: %v", lerr)
				}
				assertNoSecret(t, lerr.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.Addrs, tt.addrs) || o.DB != tt.db || o.MasterName != tt.master ||
				o.IsClusterMode != tt.cluster || (o.TLSConfig != nil) != tt.tls || o.Password != tt.password {
				t.Errorf("got addrs=%v db=%d master=%q cluster=%v tls=%v", o.Addrs, o.DB, o.MasterName, o.IsClusterMode, o.TLSConfig != nil)
			}
			c, err := Load(lookup(with(minimal(), "REDIS_URL", tt.url)))
			if err != nil || !c.UseRedis() {
				t.Fatalf("Load: %v", err)
			}
			// RedisOptions hands out copies: a caller cannot change the config.
			c.RedisOptions().Addrs[0] = "changed"
			if c.RedisOptions().Addrs[0] != tt.addrs[0] {
				t.Error("RedisOptions shares its Addrs slice")
			}
			assertNoSecret(t, c.Redacted())
		})
	}
}

func TestRedactRedisURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://u:" + redisPass + "@h:1/0", "redis://u:xxxxx@h:1/0"},
		{"redis://h?master_name=m&password=" + redisPass, "redis://h?master_name=m&password=xxxxx"},
		{"redis://u:" + redisPass + "@local host", "[redacted]"},
	}
	for _, tt := range tests {
		if got := RedactRedisURL(tt.in); got != tt.want {
			t.Errorf("RedactRedisURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConsoleMode(t *testing.T) {
	// Nothing set: simulator, memory, default identities, no Slack tokens.
	c, err := LoadConsole(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeConsole || !c.DefenderSimulate || c.UseRedis() ||
		!slices.Equal(c.AllowedUserIDs, []string{ConsoleAnalyst, ConsoleManager}) ||
		!slices.Equal(c.ApproverUserIDs, []string{ConsoleManager}) {
		t.Errorf("console defaults: %+v", c)
	}
	// Azure credentials given: the real API, and a missing secret is an error.
	_, err = LoadConsole(lookup(map[string]string{"AZURE_CLIENT_ID": clientID, "AZURE_TENANT_ID": tenantID}))
	if err == nil || !strings.Contains(err.Error(), "AZURE_CLIENT_CERTIFICATE_PATH") {
		t.Errorf("console with partial Azure config: %v", err)
	}
	// The bot mode with nothing set names every required variable.
	_, err = Load(lookup(nil))
	var ps Problems
	if !asProblems(err, &ps) {
		t.Fatalf("bot mode: %v", err)
	}
	for _, name := range []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "ALLOWED_USER_IDS", "APPROVER_USER_IDS", "AZURE_TENANT_ID", "AZURE_CLIENT_ID"} {
		if !slices.Contains(ps.Vars(), name) {
			t.Errorf("bot mode with empty env: no problem for %s", name)
		}
	}
}

func TestRateLimitOrder(t *testing.T) {
	tests := []struct {
		min, hour string
		ok        bool
	}{
		{"100", "1500", true},
		{"100", "100", true},
		{"100", "99", false},
		{"1", "1", true},
		{"-1", "10", false},
	}
	for _, tt := range tests {
		_, err := Load(lookup(with(minimal(), "RATE_LIMIT_PER_MINUTE", tt.min, "RATE_LIMIT_PER_HOUR", tt.hour)))
		if (err == nil) != tt.ok {
			t.Errorf("%s/min %s/h: err=%v want ok=%v", tt.min, tt.hour, err, tt.ok)
		}
	}
}

// FuzzParseRedisURL: any input either parses or fails without panicking,
// and a password in it never shows up in the error.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379/0", "rediss://u:p@h:1", "redis://h?master_name=m&addr=a:1",
		"redis://a:1?addr=b:2", "unix:///x.sock", "redis://%zz", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := "redis://user:" + redisPass + "@" + s
		if _, err := ParseRedisURL(u); err != nil && strings.Contains(err.Error(), redisPass) {
			t.Errorf("error leaks the password: %v", err)
		}
		_ = RedactRedisURL(s)
	})
}

// FuzzLoad: arbitrary values for a list, a number and a URL never panic and
// always yield either a config or Problems.
func FuzzLoad(f *testing.F) {
	f.Add("U01,S02", "100", "https://slack.com/api/")
	f.Add(",,,", "x", "http://[::1")
	f.Fuzz(func(t *testing.T, ids, n, u string) {
		_, err := Load(lookup(with(minimal(), "ALLOWED_USER_IDS", ids, "WORKERS", n, "SLACK_API_URL", u)))
		if err != nil {
			var ps Problems
			if !asProblems(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %T %v is not Problems", err, err)
			}
		}
	})
}

// TestAuthorityAgreesWithClient: every AZURE_AUTHORITY_HOST that passes
// configuration is one the MDE client (and MSAL behind it) accepts, and
// the other way round, so `bot check` never fails on a value Load let
// through.
func TestAuthorityAgreesWithClient(t *testing.T) {
	for _, host := range []string{
		"https://login.microsoftonline.com", "https://login.microsoftonline.us/", "https://127.0.0.1:8443",
		"http://127.0.0.1:8443", "http://localhost", "https://login.example/tenant", "http://login.example",
		"login.microsoftonline.com", "https://user:pw@login.example",
	} {
		_, loadErr := Load(lookup(with(minimal(), "AZURE_AUTHORITY_HOST", host)))
		f := DefaultFixed()
		_, newErr := defender.New(defender.Config{APIURL: DefaultDefenderAPIURL, AuthorityHost: host,
			TenantID: "contoso.onmicrosoft.com", ClientID: "client", ClientSecret: "secret", UserAgent: "isolate-bot/test",
			MaxGetAttempts: f.MDEMaxGetAttempts, BaseBackoff: f.MDEBaseBackoff, MaxBackoff: f.MDEMaxBackoff,
			MaxRetryAfterWait: f.MDEMaxRetryAfterWait, AttemptTimeout: DefaultMDECallTimeout, NotFoundRetryDelay: f.MDENotFoundRetryDelay})
		if (loadErr == nil) != (newErr == nil) {
			t.Errorf("AZURE_AUTHORITY_HOST=%s: configuration says %v, the client says %v", host, loadErr, newErr)
		}
	}
}
