// Package ops is isolate-bot's operations surface: the HTTP server with
// liveness (/healthz), readiness (/readyz) and Prometheus metrics (/metrics),
// the Metrics themselves, and decorators that count what the core does
// without the core knowing about Prometheus.
package ops

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// checkGrace is how long a timed-out check may take to say why.
const checkGrace = 100 * time.Millisecond

// Check is one named readiness check, e.g. "slack" (Socket Mode connected),
// "state" (the approvals store answers PING), "azure token" (a token can be
// obtained). Func returns nil when ready; its error text is shown on /readyz
// after redaction, so it should say what is wrong in words an operator can
// act on.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Options tunes the server. CheckTimeout is required: internal/app passes
// internal/config's value.
type Options struct {
	// CheckTimeout bounds each readiness check; they run concurrently, so
	// /readyz answers within about this long even when a dependency hangs
	// (a frozen Redis accepts connections and never answers).
	CheckTimeout time.Duration
}

// NewServer returns an *http.Server on addr serving /healthz, /readyz (the
// given checks) and /metrics (reg only, never the global registry). The
// caller runs ListenAndServe and Shutdown.
func NewServer(addr string, checks []Check, reg *prometheus.Registry, logger zerolog.Logger, opts Options) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           NewHandler(checks, reg, logger, opts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.New(logger.With().Str("component", "ops-http").Logger(), "", 0),
	}
}

// NewHandler is the routes of NewServer, for tests and for mounting
// elsewhere. It panics without opts.CheckTimeout: ops keeps no defaults.
func NewHandler(checks []Check, reg *prometheus.Registry, logger zerolog.Logger, opts Options) http.Handler {
	if opts.CheckTimeout <= 0 {
		panic("ops: Options.CheckTimeout not set; internal/app passes internal/config's value")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.Handle("GET /readyz", handleReadyz(checks, opts.CheckTimeout, logger))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          promLogger{logger},
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          reg, // exposes promhttp_metric_handler_errors_total
		Timeout:           10 * time.Second,
		EnableOpenMetrics: false,
	}))
	return mux
}

// handleHealthz answers 200 as long as the process can serve HTTP: liveness
// must not depend on Redis or Slack, or an outage of either would make
// Kubernetes restart every replica in a loop.
func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	plain(w, http.StatusOK, "ok\n")
}

type result struct {
	name string
	err  error
}

func handleReadyz(checks []Check, timeout time.Duration, logger zerolog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		results := runChecks(r.Context(), checks, timeout)
		var b strings.Builder
		failed := 0
		for _, res := range results {
			if res.err == nil {
				fmt.Fprintf(&b, "ok %s\n", res.name)
				continue
			}
			failed++
			reason := Redact(res.err.Error())
			fmt.Fprintf(&b, "fail %s: %s\n", res.name, reason)
			logger.Warn().Str("check", res.name).Str("reason", reason).Msg("readiness check failed")
		}
		if failed > 0 {
			plain(w, http.StatusServiceUnavailable, b.String())
			return
		}
		if len(results) == 0 {
			b.WriteString("ok\n")
		}
		plain(w, http.StatusOK, b.String())
	})
}

// runChecks runs every check concurrently, each bounded by timeout, so the
// whole probe takes at most about one timeout. A check that ignores its
// context is reported as timed out and left to finish on its own; a check
// that panics is reported as failed (fail closed: not ready).
func runChecks(ctx context.Context, checks []Check, timeout time.Duration) []result {
	out := make([]result, len(checks))
	done := make(chan struct{}, len(checks))
	for i, c := range checks {
		out[i].name = c.Name
		go func() {
			defer func() { done <- struct{}{} }()
			out[i].err = runOne(ctx, c, timeout)
		}()
	}
	for range checks {
		<-done
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func runOne(ctx context.Context, c Check, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errc := make(chan error, 1) // buffered: a late check must not block forever
	go func() {
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("check panicked")
			}
		}()
		if c.Func == nil {
			errc <- fmt.Errorf("no check function configured")
			return
		}
		errc <- c.Func(ctx)
	}()
	select {
	case err := <-errc:
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("timed out after %s: %w", timeout, err)
		}
		return err
	case <-ctx.Done():
		// A check that honours its context returns its own error (which
		// names the dependency, e.g. "state store unavailable") a moment
		// later; wait that moment, never longer.
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("timed out after %s: %w", timeout, err)
			}
		case <-time.After(checkGrace):
		}
		return fmt.Errorf("timed out after %s", timeout)
	}
}

var (
	// Slack tokens (xoxb-, xoxp-, xapp-, …), bearer credentials, URL
	// userinfo (redis://user:password@host) and key=value secrets.
	reSlackToken = regexp.MustCompile(`x(?:ox[abeoprs]|app)-[A-Za-z0-9-]+`)
	reBearer     = regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+`)
	reUserinfo   = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)
	reKeyValue   = regexp.MustCompile(`(?i)\b(client_secret|password|passwd|secret|token|access_token|assertion|client_assertion|sig)=([^&\s]+)`)
	reJWT        = regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)
)

// maxReason caps a reason shown on /readyz: it is for a person reading a
// probe result, not a place for upstream response bodies.
const maxReason = 300

// Redact removes things that look like credentials from s, keeps only its
// first line and caps its length. Checks should not put secrets in errors
// in the first place; this is the second line of defence before text
// reaches an HTTP response or a log.
func Redact(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = reSlackToken.ReplaceAllString(s, "[redacted]")
	s = reBearer.ReplaceAllString(s, "Bearer [redacted]")
	s = reUserinfo.ReplaceAllString(s, "${1}[redacted]@")
	s = reKeyValue.ReplaceAllString(s, "${1}=[redacted]")
	s = reJWT.ReplaceAllString(s, "[redacted]")
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "") + "…"
	}
	return s
}

func plain(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// promLogger adapts zerolog to promhttp's Logger.
type promLogger struct{ l zerolog.Logger }

func (p promLogger) Println(v ...any) {
	p.l.Error().Str("component", "metrics").Msg(Redact(fmt.Sprint(v...)))
}

// ProbeLocal GETs path (e.g. "/healthz") from the ops server listening on
// httpAddr (HTTP_ADDR: ":8080", "0.0.0.0:8080", "10.0.0.5:8080") and returns
// nil on 200. An empty or unspecified host means loopback. It is the body of
// a `bot healthz` subcommand: distroless images have no curl for Docker's
// HEALTHCHECK. client nil means a client with a 3 s timeout.
func ProbeLocal(ctx context.Context, client *http.Client, httpAddr, path string) error {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %q is not host:port: %w", httpAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	if client == nil {
		client = &http.Client{Timeout: 3 * time.Second}
	}
	u := "http://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", u, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: HTTP %d: %s", u, resp.StatusCode, Redact(strings.TrimSpace(string(body))))
	}
	return nil
}
