// Package config loads isolate-bot's configuration from environment
// variables (the caller merges an optional .env file into the lookup). The
// variable names are a public interface: README.md and .env.example document
// each one. Load validates everything at once and reports every problem,
// naming the variable and never echoing a secret.
package config

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/caarlos0/env/v11"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/protect"
)

// Mode says which parts of the configuration are required.
type Mode int

const (
	// ModeBot is the Slack bot (and `check`): Slack tokens and the user
	// allow-lists are required.
	ModeBot Mode = iota
	// ModeConsole is the terminal try-out: no Slack tokens; default
	// identities when the allow-lists are empty.
	ModeConsole
)

// Console identities used when ALLOWED_USER_IDS / APPROVER_USER_IDS are
// empty in console mode.
const (
	ConsoleAnalyst = "U0ANALYST" // "alice"
	ConsoleManager = "U0MANAGER" // "bob"
)

// Secret is a credential. It formats as "[redacted]" under every fmt verb
// and in JSON/text encoding, so logging a Config cannot leak it; Reveal
// returns the value for the one place that must send it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// Format implements fmt.Formatter for every verb (%v, %s, %q, %#v, %x …).
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.mask())) }

// MarshalText keeps the value out of JSON, YAML and zerolog output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Config is the validated configuration.
type Config struct {
	Mode Mode

	SlackAppToken Secret // SLACK_APP_TOKEN, xapp-…
	SlackBotToken Secret // SLACK_BOT_TOKEN, xoxb-…
	SlackAPIURL   string // SLACK_API_URL, always ends with "/"

	AzureTenantID     string // AZURE_TENANT_ID
	AzureClientID     string // AZURE_CLIENT_ID
	AzureClientSecret Secret // AZURE_CLIENT_SECRET
	// AZURE_CLIENT_CERTIFICATE_PATH, read and checked at load time:
	// AzureCertificatePEM is the file's content (certificate and private
	// key), AzureCertificates its parsed certificates.
	AzureCertificatePath string
	AzureCertificatePEM  Secret
	AzureCertificates    []*x509.Certificate
	AzureAuthorityHost   string // AZURE_AUTHORITY_HOST, no trailing slash

	DefenderAPIURL   string // DEFENDER_API_URL, no trailing slash
	DefenderScope    string // DEFENDER_SCOPE
	DefenderSimulate bool   // DEFENDER_SIMULATE

	RedisURL    Secret // REDIS_URL; may hold a password. Empty: in-memory state.
	RedisPrefix string // REDIS_PREFIX
	// redisOptions is the parsed REDIS_URL (nil when empty); see RedisOptions.
	redisOptions *redis.UniversalOptions

	AllowedUserIDs    []string // ALLOWED_USER_IDS (U…/W… users, S… groups)
	ApproverUserIDs   []string // APPROVER_USER_IDS
	AllowedChannelIDs []string // ALLOWED_CHANNEL_IDS; empty: any channel

	// PROTECTED_MACHINES, parsed (protected.go), and as written for
	// Redacted; PROTECTED_MODE.
	ProtectedMachines     protect.Set
	ProtectedMachinesSpec string
	ProtectedMode         protect.Mode

	RateLimitPerMinute int // RATE_LIMIT_PER_MINUTE: exact calls per minute per MDE API
	RateLimitPerHour   int // RATE_LIMIT_PER_HOUR: exact calls per hour per MDE API

	ApprovalTTL    time.Duration // APPROVAL_TTL
	AuditRetention time.Duration // AUDIT_RETENTION
	QueueMaxWait   time.Duration // QUEUE_MAX_WAIT
	MDECallTimeout time.Duration // MDE_CALL_TIMEOUT: one MDE call; a replica takes over another's stalled call after twice this
	FollowFor      time.Duration // FOLLOW_FOR: how long after its creation an MDE action is followed
	// BULK_MAX: the most machines one command (a list or a tag) may name;
	// BULK_TWO_APPROVERS_OVER: a command naming more machines than this
	// needs two different approvers.
	BulkMax              int
	BulkTwoApproversOver int
	Workers              int           // WORKERS
	ShutdownTimeout      time.Duration // SHUTDOWN_TIMEOUT

	HTTPAddr  string        // HTTP_ADDR
	LogLevel  zerolog.Level // LOG_LEVEL
	LogFormat string        // LOG_FORMAT: "json" or "console"

	// Fixed are the values without a variable (defaults.go).
	Fixed
}

// raw is what caarlos0/env parses: defaults come from defaultRaw (the tags
// carry only the names), typed fields are converted by env (its errors are mapped back to variable names), and
// everything needing more than a type conversion is checked in validate.
type raw struct {
	SlackAppToken   string `env:"SLACK_APP_TOKEN"`
	SlackBotToken   string `env:"SLACK_BOT_TOKEN"`
	SlackAPIURL     string `env:"SLACK_API_URL"`
	TenantID        string `env:"AZURE_TENANT_ID"`
	ClientID        string `env:"AZURE_CLIENT_ID"`
	ClientSecret    string `env:"AZURE_CLIENT_SECRET"`
	CertificatePath string `env:"AZURE_CLIENT_CERTIFICATE_PATH"`
	AuthorityHost   string `env:"AZURE_AUTHORITY_HOST"`
	DefenderAPIURL  string `env:"DEFENDER_API_URL"`
	DefenderScope   string `env:"DEFENDER_SCOPE"`
	Simulate        bool   `env:"DEFENDER_SIMULATE"`
	RedisURL        string `env:"REDIS_URL"`
	RedisPrefix     string `env:"REDIS_PREFIX"`
	AllowedUsers    string `env:"ALLOWED_USER_IDS"`
	Approvers       string `env:"APPROVER_USER_IDS"`
	AllowedChannels string `env:"ALLOWED_CHANNEL_IDS"`
	Protected       string `env:"PROTECTED_MACHINES"`
	ProtectedMode   string `env:"PROTECTED_MODE"`

	PerMinute       int           `env:"RATE_LIMIT_PER_MINUTE"`
	PerHour         int           `env:"RATE_LIMIT_PER_HOUR"`
	ApprovalTTL     time.Duration `env:"APPROVAL_TTL"`
	AuditRetention  time.Duration `env:"AUDIT_RETENTION"`
	QueueMaxWait    time.Duration `env:"QUEUE_MAX_WAIT"`
	MDECallTimeout  time.Duration `env:"MDE_CALL_TIMEOUT"`
	FollowFor       time.Duration `env:"FOLLOW_FOR"`
	BulkMax         int           `env:"BULK_MAX"`
	BulkTwoOver     int           `env:"BULK_TWO_APPROVERS_OVER"`
	Workers         int           `env:"WORKERS"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT"`
	HTTPAddr        string        `env:"HTTP_ADDR"`
	LogLevel        string        `env:"LOG_LEVEL"`
	LogFormat       string        `env:"LOG_FORMAT"`
}

// Variables lists every variable Load reads, in documentation order.
func Variables() []string {
	t := reflect.TypeFor[raw]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		names = append(names, t.Field(i).Tag.Get("env"))
	}
	return names
}

// Load reads the bot's configuration (ModeBot) through getenv.
func Load(getenv func(string) string) (Config, error) { return LoadMode(getenv, ModeBot) }

// LoadConsole reads the console try-out's configuration: no Slack tokens,
// default identities, and the simulator unless Azure variables are set.
func LoadConsole(getenv func(string) string) (Config, error) {
	return LoadMode(getenv, ModeConsole)
}

// LoadMode reads and validates the configuration for mode. On failure the
// error is a Problems listing every problem found.
func LoadMode(getenv func(string) string, mode Mode) (Config, error) {
	environ := make(map[string]string)
	for _, name := range Variables() {
		// Trimmed: values pasted from a portal or a file often end in a newline.
		if v := strings.TrimSpace(getenv(name)); v != "" {
			environ[name] = v
		}
	}
	if mode == ModeConsole {
		// A terminal wants warnings only, readable; explicit settings win.
		if environ["LOG_LEVEL"] == "" {
			environ["LOG_LEVEL"] = ConsoleLogLevel
		}
		if environ["LOG_FORMAT"] == "" {
			environ["LOG_FORMAT"] = ConsoleLogFormat
		}
		// The try-out needs no Azure account: simulate unless credentials
		// are given or the user said otherwise.
		if _, set := environ["DEFENDER_SIMULATE"]; !set && environ["AZURE_CLIENT_ID"] == "" {
			environ["DEFENDER_SIMULATE"] = "true"
		}
		if environ["ALLOWED_USER_IDS"] == "" {
			environ["ALLOWED_USER_IDS"] = ConsoleAnalyst + "," + ConsoleManager
		}
		if environ["APPROVER_USER_IDS"] == "" {
			environ["APPROVER_USER_IDS"] = ConsoleManager
		}
	}

	var p Problems
	r := defaultRaw()
	if err := env.ParseWithOptions(&r, env.Options{Environment: environ}); err != nil {
		p = append(p, parseProblems(err)...)
	}
	c := Config{Mode: mode, Fixed: DefaultFixed()}
	if mode == ModeConsole {
		c.Fixed = consoleFixed()
	}
	p = append(p, c.fill(r)...)
	if len(p) > 0 {
		return Config{}, p
	}
	return c, nil
}

// parseProblems turns env's type-conversion errors into Problems naming the
// variable. Only non-secret fields are typed, so quoting the value is safe.
func parseProblems(err error) Problems {
	var p Problems
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return Problems{{Var: "(environment)", Msg: err.Error()}}
	}
	t, defaults := reflect.TypeFor[raw](), reflect.ValueOf(defaultRaw())
	for _, e := range agg.Errors {
		pe, ok := e.(env.ParseError)
		if !ok {
			p = append(p, Problem{Var: "(environment)", Msg: e.Error()})
			continue
		}
		f, _ := t.FieldByName(pe.Name)
		name, def := f.Tag.Get("env"), defaults.FieldByName(pe.Name).Interface()
		switch pe.Type {
		case reflect.TypeFor[int]():
			p = append(p, Problem{name, fmt.Sprintf("must be a whole number, e.g. %d", def)})
		case reflect.TypeFor[time.Duration]():
			p = append(p, Problem{name, "must be a Go duration such as 90s, 15m or " + shortDuration(def.(time.Duration))})
		case reflect.TypeFor[bool]():
			p = append(p, Problem{name, "must be true or false"})
		default:
			p = append(p, Problem{name, "could not be parsed"})
		}
	}
	return p
}

// shortDuration writes d as a person would: 1h, 720h, 30s (not 1h0m0s).
func shortDuration(d time.Duration) string {
	switch {
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

var (
	userIDRe    = regexp.MustCompile(`^[UWS][A-Z0-9]{2,}$`)
	channelIDRe = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
	guidRe      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	tenantRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

// fill validates r and copies it into c, returning every problem.
func (c *Config) fill(r raw) Problems {
	var p Problems
	add := func(name, format string, args ...any) {
		p = append(p, Problem{Var: name, Msg: fmt.Sprintf(format, args...)})
	}

	// Slack. Messages describe the expected form, never the value given.
	c.SlackAppToken, c.SlackBotToken = Secret(r.SlackAppToken), Secret(r.SlackBotToken)
	if c.Mode == ModeBot {
		switch {
		case r.SlackAppToken == "":
			add("SLACK_APP_TOKEN", "is required: create an app-level token with the connections:write scope (Slack app settings › Basic Information) and set it (xapp-…)")
		case !strings.HasPrefix(r.SlackAppToken, "xapp-"):
			add("SLACK_APP_TOKEN", "must start with xapp- (an app-level token, not the bot token)")
		}
		switch {
		case r.SlackBotToken == "":
			add("SLACK_BOT_TOKEN", "is required: install the app to the workspace and copy the Bot User OAuth Token (xoxb-…)")
		case !strings.HasPrefix(r.SlackBotToken, "xoxb-"):
			add("SLACK_BOT_TOKEN", "must start with xoxb- (the Bot User OAuth Token)")
		}
	}
	if u, msg := checkURL(r.SlackAPIURL); msg != "" {
		add("SLACK_API_URL", "%s (e.g. %s, or https://slack-gov.com/api/ for GovSlack)", msg, DefaultSlackAPIURL)
	} else {
		c.SlackAPIURL = strings.TrimSuffix(u.String(), "/") + "/"
	}

	// Azure / MDE.
	c.DefenderSimulate = r.Simulate
	c.AzureTenantID, c.AzureClientID = r.TenantID, r.ClientID
	c.AzureClientSecret, c.AzureCertificatePath = Secret(r.ClientSecret), r.CertificatePath
	if u, msg := checkAuthority(r.AuthorityHost); msg != "" {
		add("AZURE_AUTHORITY_HOST", "%s (e.g. %s, or https://login.microsoftonline.us for GCC High/DoD)", msg, DefaultAuthorityHost)
	} else {
		c.AzureAuthorityHost = strings.TrimSuffix(u.String(), "/")
	}
	if u, msg := checkURL(r.DefenderAPIURL); msg != "" {
		add("DEFENDER_API_URL", "%s (e.g. %s or a geo/Gov host such as https://eu.api.security.microsoft.com)", msg, DefaultDefenderAPIURL)
	} else {
		c.DefenderAPIURL = strings.TrimSuffix(u.String(), "/")
		c.DefenderScope = defender.ScopeFor(u)
	}
	if r.DefenderScope != "" {
		c.DefenderScope = r.DefenderScope
		if u, err := url.Parse(r.DefenderScope); err != nil || u.Scheme == "" || u.Host == "" || !strings.HasSuffix(u.Path, "/.default") {
			add("DEFENDER_SCOPE", "must be an application ID URI followed by /.default, e.g. https://api.securitycenter.microsoft.com/.default; leave it empty for the scope that matches DEFENDER_API_URL")
		}
	}
	if !r.Simulate {
		p = append(p, c.fillAzure(r)...)
	}

	// Redis.
	c.RedisURL, c.RedisPrefix = Secret(r.RedisURL), r.RedisPrefix
	if r.RedisURL != "" {
		opts, err := ParseRedisURL(r.RedisURL)
		if err != nil {
			add("REDIS_URL", "%v; use redis://host:6379/0, rediss://… for TLS, redis://sentinel:26379?master_name=mymaster&addr=sentinel2:26379 for Sentinel, or several addr= for a cluster", err)
		}
		c.redisOptions = opts
	}
	if strings.ContainsAny(r.RedisPrefix, " \t{}") {
		add("REDIS_PREFIX", "must not contain spaces or braces (braces would change Redis Cluster hash slots)")
	}

	// Allow-lists.
	var msg string
	if c.AllowedUserIDs, msg = idList(r.AllowedUsers, userIDRe); msg != "" {
		add("ALLOWED_USER_IDS", "%s: use Slack member ids (U…/W…, profile › ⋮ › Copy member ID) or user group ids (S…)", msg)
	} else if len(c.AllowedUserIDs) == 0 {
		add("ALLOWED_USER_IDS", "is required: list the Slack member ids (U…/W…) or user groups (S…) allowed to request isolation, comma-separated")
	}
	if c.ApproverUserIDs, msg = idList(r.Approvers, userIDRe); msg != "" {
		add("APPROVER_USER_IDS", "%s: use Slack member ids (U…/W…) or user group ids (S…)", msg)
	} else if len(c.ApproverUserIDs) == 0 {
		add("APPROVER_USER_IDS", "is required: list the Slack member ids (U…/W…) or user groups (S…) who may approve, comma-separated")
	}
	if c.AllowedChannelIDs, msg = idList(r.AllowedChannels, channelIDRe); msg != "" {
		add("ALLOWED_CHANNEL_IDS", "%s: use channel ids (C… or G…, channel details › About), or leave empty to allow any channel", msg)
	}

	p = append(p, c.fillProtected(r)...)

	// Numbers and durations.
	c.RateLimitPerMinute, c.RateLimitPerHour = r.PerMinute, r.PerHour
	if r.PerMinute <= 0 {
		add("RATE_LIMIT_PER_MINUTE", "must be a positive whole number (MDE allows %d)", DefaultPerMinute)
	}
	if r.PerHour <= 0 {
		add("RATE_LIMIT_PER_HOUR", "must be a positive whole number (MDE allows %d)", DefaultPerHour)
	} else if r.PerMinute > 0 && r.PerHour < r.PerMinute {
		add("RATE_LIMIT_PER_HOUR", "must be at least RATE_LIMIT_PER_MINUTE (%d)", r.PerMinute)
	}
	c.BulkMax, c.BulkTwoApproversOver = r.BulkMax, r.BulkTwoOver
	if r.BulkMax < 2 {
		add("BULK_MAX", "must be a whole number of at least 2 (the most machines one command may name), e.g. %d", DefaultBulkMax)
	}
	if r.BulkTwoOver < 1 {
		add("BULK_TWO_APPROVERS_OVER", "must be a positive whole number (commands naming more machines need two approvers), e.g. %d", DefaultBulkTwoApproversOver)
	}
	c.Workers = r.Workers
	if r.Workers <= 0 {
		add("WORKERS", "must be a positive whole number, e.g. %d", DefaultWorkers)
	}
	c.ApprovalTTL, c.AuditRetention = r.ApprovalTTL, r.AuditRetention
	c.QueueMaxWait, c.ShutdownTimeout, c.MDECallTimeout = r.QueueMaxWait, r.ShutdownTimeout, r.MDECallTimeout
	c.FollowFor = r.FollowFor
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"APPROVAL_TTL", r.ApprovalTTL}, {"AUDIT_RETENTION", r.AuditRetention},
		{"QUEUE_MAX_WAIT", r.QueueMaxWait}, {"SHUTDOWN_TIMEOUT", r.ShutdownTimeout},
		{"MDE_CALL_TIMEOUT", r.MDECallTimeout}, {"FOLLOW_FOR", r.FollowFor},
	} {
		if d.v <= 0 {
			add(d.name, "must be a positive duration, e.g. 90s, 15m or 1h")
		}
	}

	// Operations.
	c.HTTPAddr = r.HTTPAddr
	if _, port, err := net.SplitHostPort(r.HTTPAddr); err != nil || port == "" {
		add("HTTP_ADDR", "must be host:port or :port, e.g. %s", DefaultHTTPAddr)
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(r.LogLevel))
	if err != nil || lvl == zerolog.NoLevel {
		add("LOG_LEVEL", "must be one of trace, debug, info, warn, error, fatal, panic, disabled")
	}
	c.LogLevel = lvl
	c.LogFormat = strings.ToLower(r.LogFormat)
	if c.LogFormat != "json" && c.LogFormat != "console" {
		add("LOG_FORMAT", "must be json (for log collectors) or console (for humans)")
	}
	return p
}

// fillAzure checks the credentials for the real MDE API.
func (c *Config) fillAzure(r raw) Problems {
	var p Problems
	add := func(name, format string, args ...any) {
		p = append(p, Problem{Var: name, Msg: fmt.Sprintf(format, args...)})
	}
	const orSimulate = "; or set DEFENDER_SIMULATE=true to use the built-in simulator"
	switch {
	case r.TenantID == "":
		add("AZURE_TENANT_ID", "is required: the Directory (tenant) ID of the app registration"+orSimulate)
	case !tenantRe.MatchString(r.TenantID):
		add("AZURE_TENANT_ID", "must be the tenant GUID or its domain (contoso.onmicrosoft.com)")
	}
	switch {
	case r.ClientID == "":
		add("AZURE_CLIENT_ID", "is required: the Application (client) ID of the app registration"+orSimulate)
	case !guidRe.MatchString(r.ClientID):
		add("AZURE_CLIENT_ID", "must be a GUID: the Application (client) ID of the app registration")
	}
	switch {
	case r.ClientSecret == "" && r.CertificatePath == "":
		add("AZURE_CLIENT_CERTIFICATE_PATH", "or AZURE_CLIENT_SECRET is required: set the path of a PEM file holding the certificate and its private key (recommended) or the client secret"+orSimulate)
	case r.ClientSecret != "" && r.CertificatePath != "":
		add("AZURE_CLIENT_SECRET", "and AZURE_CLIENT_CERTIFICATE_PATH are both set: set exactly one (a certificate is recommended)")
	case r.CertificatePath != "":
		pemData, certs, msg := readCertificate(r.CertificatePath)
		if msg != "" {
			add("AZURE_CLIENT_CERTIFICATE_PATH", "%s", msg)
		}
		c.AzureCertificatePEM, c.AzureCertificates = Secret(pemData), certs
	}
	return p
}

// readCertificate loads and checks a PEM file the way MSAL will use it:
// at least one certificate and an unencrypted RSA key matching one of them.
func readCertificate(path string) ([]byte, []*x509.Certificate, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil, fmt.Sprintf("file %q does not exist: give the path of the PEM file with the certificate and its private key", path)
		}
		return nil, nil, fmt.Sprintf("cannot read %q: %v", path, err)
	}
	certs, key, err := confidential.CertFromPEM(data, "")
	if err != nil {
		return nil, nil, fmt.Sprintf("%q is not a usable PEM certificate with private key: %v (concatenate the CERTIFICATE and the unencrypted PRIVATE KEY blocks into one file)", path, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Sprintf("the private key in %q is not RSA: Microsoft Entra client certificates must use RSA keys", path)
	}
	for _, cert := range certs {
		if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok && pub.Equal(&rk.PublicKey) {
			return data, certs, ""
		}
	}
	return nil, nil, fmt.Sprintf("the private key in %q matches none of its certificates: put the certificate uploaded to the app registration and its own key in the file", path)
}

// checkURL requires an absolute https URL, or http on a loopback host (for
// tests and local fakes).
func checkURL(s string) (*url.URL, string) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, "must be an absolute https:// URL"
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, "must not contain credentials, a query or a fragment"
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, "must use https:// (plain http is accepted only for 127.0.0.1, localhost and [::1])"
	}
	return u, ""
}

// checkAuthority is checkURL for the Entra login host, which MSAL takes
// only as https://host (it refuses plain http even on loopback, and the
// tenant is appended as the path).
func checkAuthority(s string) (*url.URL, string) {
	u, msg := checkURL(s)
	switch {
	case msg != "":
		return nil, msg
	case u.Scheme != "https":
		return nil, "must use https:// (the Microsoft authentication library refuses plain http, even for a local fake)"
	case strings.Trim(u.Path, "/") != "":
		return nil, "must be https://host with no path (the tenant is added from AZURE_TENANT_ID)"
	}
	return u, ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// idList splits a comma-separated list of Slack ids, dropping blanks and
// duplicates. msg names the first bad entry (ids are not secret).
func idList(s string, re *regexp.Regexp) ([]string, string) {
	var ids []string
	seen := make(map[string]bool)
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" || seen[f] {
			continue
		}
		if !re.MatchString(f) {
			return nil, fmt.Sprintf("%q is not a valid id", f)
		}
		seen[f] = true
		ids = append(ids, f)
	}
	return ids, ""
}

// Authority is the MSAL authority URL: AZURE_AUTHORITY_HOST/AZURE_TENANT_ID.
func (c Config) Authority() string { return c.AzureAuthorityHost + "/" + c.AzureTenantID }

// UseRedis reports whether state is shared through Redis (REDIS_URL set);
// otherwise it lives in memory and only one replica may run.
func (c Config) UseRedis() bool { return c.redisOptions != nil }

// RedisOptions returns a fresh copy of the parsed REDIS_URL, or nil when
// state is in memory. Pass it to redis.NewUniversalClient.
func (c Config) RedisOptions() *redis.UniversalOptions {
	if c.redisOptions == nil {
		return nil
	}
	o := *c.redisOptions
	o.Addrs = append([]string(nil), o.Addrs...)
	if o.TLSConfig != nil {
		o.TLSConfig = o.TLSConfig.Clone()
	}
	return &o
}

// String is safe to log: secrets are masked and the Redis password removed.
func (c Config) String() string { return c.Redacted() }

// GoString keeps %#v (which would print unexported fields) safe as well.
func (c Config) GoString() string { return c.Redacted() }

// Redacted renders the configuration as VAR=value lines with secrets masked.
func (c Config) Redacted() string {
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s=%v\n", k, v) }
	line("SLACK_APP_TOKEN", c.SlackAppToken)
	line("SLACK_BOT_TOKEN", c.SlackBotToken)
	line("SLACK_API_URL", c.SlackAPIURL)
	line("AZURE_TENANT_ID", c.AzureTenantID)
	line("AZURE_CLIENT_ID", c.AzureClientID)
	line("AZURE_CLIENT_SECRET", c.AzureClientSecret)
	line("AZURE_CLIENT_CERTIFICATE_PATH", c.AzureCertificatePath)
	line("AZURE_AUTHORITY_HOST", c.AzureAuthorityHost)
	line("DEFENDER_API_URL", c.DefenderAPIURL)
	line("DEFENDER_SCOPE", c.DefenderScope)
	line("DEFENDER_SIMULATE", c.DefenderSimulate)
	line("REDIS_URL", RedactRedisURL(c.RedisURL.Reveal()))
	line("REDIS_PREFIX", c.RedisPrefix)
	line("ALLOWED_USER_IDS", strings.Join(c.AllowedUserIDs, ","))
	line("APPROVER_USER_IDS", strings.Join(c.ApproverUserIDs, ","))
	line("ALLOWED_CHANNEL_IDS", strings.Join(c.AllowedChannelIDs, ","))
	line("PROTECTED_MACHINES", c.ProtectedMachinesSpec)
	line("PROTECTED_MODE", c.ProtectedMode)
	line("RATE_LIMIT_PER_MINUTE", c.RateLimitPerMinute)
	line("RATE_LIMIT_PER_HOUR", c.RateLimitPerHour)
	line("APPROVAL_TTL", c.ApprovalTTL)
	line("AUDIT_RETENTION", c.AuditRetention)
	line("QUEUE_MAX_WAIT", c.QueueMaxWait)
	line("MDE_CALL_TIMEOUT", c.MDECallTimeout)
	line("FOLLOW_FOR", c.FollowFor)
	line("BULK_MAX", c.BulkMax)
	line("BULK_TWO_APPROVERS_OVER", c.BulkTwoApproversOver)
	line("WORKERS", c.Workers)
	line("SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	line("HTTP_ADDR", c.HTTPAddr)
	line("LOG_LEVEL", c.LogLevel)
	line("LOG_FORMAT", c.LogFormat)
	return b.String()
}

// Problem is one configuration problem: the variable and what to do.
type Problem struct {
	Var string
	Msg string
}

func (p Problem) String() string { return p.Var + " " + p.Msg }

// Problems is every configuration problem found by one Load.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration has %d problem(s) (see .env.example and README.md):", len(ps))
	for _, p := range ps {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Vars returns the variable names with problems, in order.
func (ps Problems) Vars() []string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Var
	}
	return names
}
