package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// dockerInstr is one Dockerfile instruction with continuation lines joined.
type dockerInstr struct {
	cmd  string // upper case
	args string
	line int
}

func parseDockerfile(t *testing.T, path string) []dockerInstr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstr
	var cur strings.Builder
	start := 0
	for i, l := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(l)
		if cur.Len() == 0 && (trim == "" || strings.HasPrefix(trim, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trim, "\\") {
			cur.WriteString(strings.TrimSuffix(trim, "\\") + " ")
			continue
		}
		cur.WriteString(trim)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	var froms []int // index of each FROM
	for i, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, i)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("%d FROM instructions, want a multi-stage build", len(froms))
	}
	final := ins[froms[len(froms)-1]:]
	has := func(list []dockerInstr, cmd string, re string) bool {
		r := regexp.MustCompile(re)
		for _, in := range list {
			if in.cmd == cmd && r.MatchString(in.args) {
				return true
			}
		}
		return false
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"builder is golang:1.26", has(ins, "ARG", `^GO_IMAGE=golang:1\.26`) || has(ins, "FROM", `^golang:1\.26`)},
		{"static build (CGO_ENABLED=0 go build)", has(ins, "RUN", `CGO_ENABLED=0 go build`)},
		{"-trimpath", has(ins, "RUN", `go build .*-trimpath`)},
		{"-ldflags -s -w with main.version", has(ins, "RUN", `-ldflags "-s -w -X main\.version=`)},
		{"CA certificates in the final image", has(final, "COPY", `ca-certificates\.crt`)},
		{"binary copied from the build stage", has(final, "COPY", `^--from=build /out/bot /bot$`)},
		{"EXPOSE of the ops port", has(final, "EXPOSE", `^`+strconv.Itoa(httpPort(t))+`$`)},
		{"exec-form ENTRYPOINT", has(final, "ENTRYPOINT", `^\["/bot"\]$`)},
		{"exec-form HEALTHCHECK", has(final, "HEALTHCHECK", `CMD \["/bot", "healthz"\]$`)},
		{"distroless or scratch runtime", has(ins, "ARG", `^RUNTIME_IMAGE=gcr\.io/distroless/static`) || has(final, "FROM", `^scratch`)},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("Dockerfile: no %s", c.what)
		}
	}
	// The last USER of the final stage is numeric and not root.
	user := ""
	for _, in := range final {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	uid, gid, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("final USER = %q, want a numeric non-root UID", user)
	} else if n != 65532 {
		t.Errorf("final USER uid = %d, want 65532 (matches runAsUser)", n)
	}
	if gid != "" {
		if n, err := strconv.Atoi(gid); err != nil || n == 0 {
			t.Errorf("final USER group = %q, want numeric non-root", gid)
		}
	}
	// No credentials baked in, not even as ARG defaults.
	reSecretName := regexp.MustCompile(`(?i)(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE)`)
	for _, in := range ins {
		if (in.cmd == "ENV" || in.cmd == "ARG") && reSecretName.MatchString(in.args) {
			t.Errorf("Dockerfile line %d: %s %s looks like a credential", in.line, in.cmd, in.args)
		}
		if strings.Contains(in.args, "xoxb-") || strings.Contains(in.args, "xapp-") {
			t.Errorf("Dockerfile line %d holds a Slack token", in.line)
		}
		if in.cmd == "ADD" && strings.Contains(in.args, "://") {
			t.Errorf("Dockerfile line %d: ADD from a URL", in.line)
		}
	}
}

// healthz`, so cmd/bot must implement that subcommand (ops.ProbeLocal of
// HTTP_ADDR's /healthz, exit status 0 or 1); otherwise Docker marks every
// container unhealthy.
func TestHealthcheckSubcommand(t *testing.T) {
	files, err := filepath.Glob("../cmd/bot/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cmd/bot sources: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(`"healthz"`)) {
			return
		}
	}
	t.Error("Dockerfile HEALTHCHECK runs `/bot healthz`, but cmd/bot has no \"healthz\" subcommand: " +
		"add one that returns ops.ProbeLocal(ctx, nil, cfg.HTTPAddr, \"/healthz\"), or drop the HEALTHCHECK")
}
