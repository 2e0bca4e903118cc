package defender

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// parseODataLiteral reads one OData string literal at the start of s, as a
// server would, and returns its value and the rest of s.
func parseODataLiteral(s string) (lit, rest string, ok bool) {
	if !strings.HasPrefix(s, "'") {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), s[i+1:], true
	}
	return "", s, false
}

// parseNameFilter parses the two filters the client sends for a name
// lookup; ok is false for anything else (an injection would make it so).
func parseNameFilter(f string) (op, lit string, ok bool) {
	switch {
	case strings.HasPrefix(f, "computerDnsName eq "):
		lit, rest, ok := parseODataLiteral(strings.TrimPrefix(f, "computerDnsName eq "))
		return "eq", lit, ok && rest == ""
	case strings.HasPrefix(f, "startswith(computerDnsName,"):
		lit, rest, ok := parseODataLiteral(strings.TrimPrefix(f, "startswith(computerDnsName,"))
		return "startswith", lit, ok && rest == ")"
	}
	return "", "", false
}

// TestFindMachinesByNameQuoting proves hostile names arrive as one literal,
// the short-name fallback runs only when eq finds nothing and the name has
// no dot, and 404 means no match.
func TestFindMachinesByNameQuoting(t *testing.T) {
	machines := map[string]string{ // lower-case name → JSON
		"web-01.contoso.local": `{"id":"` + machineA + `","computerDnsName":"web-01.contoso.local"}`,
		"o'brien-pc":           `{"id":"` + strings.Repeat("b", 40) + `","computerDnsName":"o'brien-pc"}`,
	}
	tests := []struct {
		name     string
		wantIDs  int
		wantReqs []string // op:literal as the server parsed them
	}{
		{"web-01.contoso.local", 1, []string{"eq:web-01.contoso.local"}},
		{"web-01", 1, []string{"eq:web-01", "startswith:web-01."}},
		{"o'brien-pc", 1, []string{"eq:o'brien-pc"}},
		{"x' or 1 eq 1 or '", 0, []string{"eq:x' or 1 eq 1 or '", "startswith:x' or 1 eq 1 or '."}},
		{"x')or(true", 0, []string{"eq:x')or(true", "startswith:x')or(true."}},
		{"a&$top=1#x", 0, []string{"eq:a&$top=1#x", "startswith:a&$top=1#x."}},
		{"unknown.contoso.local", 0, []string{"eq:unknown.contoso.local"}},
		{"ünïcode-ホスト", 0, []string{"eq:ünïcode-ホスト", "startswith:ünïcode-ホスト."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
				op, lit, ok := parseNameFilter(r.URL.Query().Get("$filter"))
				if !ok || r.URL.Path != "/api/machines" || len(r.URL.Query()) != 1 {
					reply(w, 400, mdeError("ODataError", "bad filter", "x"))
					return
				}
				var hits []json.RawMessage
				for name, js := range machines {
					if op == "eq" && name == lit || op == "startswith" && strings.HasPrefix(name, lit) {
						hits = append(hits, json.RawMessage(js))
					}
				}
				if len(hits) == 0 {
					reply(w, 404, mdeError("ResourceNotFound", "no machines", "x")) // MDE's answer for none
					return
				}
				b, _ := json.Marshal(map[string]any{"value": hits})
				reply(w, 200, string(b))
			}, nil)
			ms, err := e.client.FindMachinesByName(context.Background(), tt.name)
			if err != nil {
				t.Fatalf("FindMachinesByName: %v", err)
			}
			if ms == nil || len(ms) != tt.wantIDs {
				t.Errorf("got %d machines (nil=%v), want %d", len(ms), ms == nil, tt.wantIDs)
			}
			var got []string
			for _, r := range e.mde.requests() {
				op, lit, ok := parseNameFilter(r.Filter)
				if !ok {
					t.Errorf("server could not parse filter %q", r.Filter)
				}
				got = append(got, op+":"+lit)
			}
			if strings.Join(got, "|") != strings.Join(tt.wantReqs, "|") {
				t.Errorf("queries = %q, want %q", got, tt.wantReqs)
			}
		})
	}
}

// FuzzNameFilter proves for any name that the encoded query decodes to one
// $filter parameter whose single literal is exactly the name.
func FuzzNameFilter(f *testing.F) {
	for _, s := range []string{"web-01", "x' or 1 eq 1 or '", "''", "'", "a&b=c", "%27", "+ +", "é", "a#b", "a)b", ";"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, filter := range []string{nameEqFilter(name), namePrefixFilter(name)} {
			q, err := url.ParseQuery(filterQuery(filter))
			if err != nil {
				t.Fatalf("query %q does not parse: %v", filterQuery(filter), err)
			}
			if len(q) != 1 || len(q["$filter"]) != 1 || q["$filter"][0] != filter {
				t.Fatalf("query %q decodes to %v, want $filter=%q", filterQuery(filter), q, filter)
			}
			op, lit, ok := parseNameFilter(filter)
			want := name
			if op == "startswith" {
				want = name + "."
			}
			if !ok || lit != want {
				t.Fatalf("filter %q parses to %q %q ok=%v, want literal %q", filter, op, lit, ok, want)
			}
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"99999999999", maxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"see https://login.example/t/oauth2?code=abc&x=1 now", "see https://login.example/t/oauth2?[redacted] now"},
		{"tok " + testToken + " end", "tok [redacted token] end"},
		{"plain text", "plain text"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := truncate("ab€cd", 3); got != "ab…" {
		t.Errorf("truncate cut a rune: %q", got)
	}
}

func TestValidIDs(t *testing.T) {
	for id, want := range map[string]bool{
		machineA: true, strings.ToUpper(machineA): true, machineA[:39]: false, machineA + "0": false,
		"g" + machineA[1:]: false, "": false,
	} {
		if ValidMachineID(id) != want {
			t.Errorf("ValidMachineID(%q) = %v", id, !want)
		}
	}
	for id, want := range map[string]bool{
		actionA: true, strings.ToUpper(actionA): true, actionA[:35]: false, "{" + actionA + "}": false,
		strings.ReplaceAll(actionA, "-", ""): false,
	} {
		if ValidActionID(id) != want {
			t.Errorf("ValidActionID(%q) = %v", id, !want)
		}
	}
}

// FuzzMapStatus proves any MDE answer maps to one kind without panicking,
// with bounded text and a non-negative Retry-After.
func FuzzMapStatus(f *testing.F) {
	f.Add(404, `{"error":{"code":"ResourceNotFound","message":"m","target":"t"}}`, "")
	f.Add(429, `{}`, "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(400, `{"error":{"code":"ActiveRequestAlreadyExists"}}`, "5")
	f.Add(503, `<html>`, "x")
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		now := time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC)
		for _, post := range []bool{false, true} {
			e := mapStatus("op", post, status, http.Header{"Retry-After": {retryAfter}}, []byte(body), now)
			if e.Kind == nil || e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter ||
				len(e.Message) > maxMessageLen+len("…") || len(e.Code) > 100+len("…") {
				t.Fatalf("mapStatus(%d, %q, %q) = %+v", status, body, retryAfter, e)
			}
			if !post && errors.Is(e, ErrOutcomeUnknown) {
				t.Fatalf("a GET mapped to ErrOutcomeUnknown")
			}
		}
	})
}
