package deploy_test

import (
	"bytes"
	"go/version"
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

// goModVersion is go.mod's go directive, e.g. "1.26.8".
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// builderImage is the Dockerfile's build-stage image: the GO_IMAGE
// argument's default when the first FROM uses it.
func builderImage(t *testing.T, ins []dockerInstr) string {
	t.Helper()
	args := map[string]string{}
	for _, in := range ins {
		switch in.cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case "FROM":
			img, _, _ := strings.Cut(in.args, " ")
			return os.Expand(img, func(k string) string { return args[k] })
		}
	}
	t.Fatal("Dockerfile has no FROM")
	return ""
}

// TestGoVersionsAgree: the builder image's Go is an exact release no older
// than go.mod's go line (with GOTOOLCHAIN=local an older Go refuses to
// build), and the README asks for that same version.
func TestGoVersionsAgree(t *testing.T) {
	mod := goModVersion(t)
	if !version.IsValid("go"+mod) || version.Lang("go"+mod) == "go"+mod {
		t.Fatalf("go.mod's go %s is not a full release version (x.y.z)", mod)
	}
	ins := parseDockerfile(t, "Dockerfile")
	img := builderImage(t, ins)
	m := regexp.MustCompile(`^(?:docker\.io/)?(?:library/)?golang:(\d+\.\d+(?:\.\d+)?)(?:-[\w.]+)?(?:@sha256:[0-9a-f]{64})?$`).FindStringSubmatch(img)
	if m == nil {
		t.Fatalf("builder image %q is not an official golang:<version>[-variant] image", img)
	}
	if v := m[1]; version.Lang("go"+v) == "go"+v {
		t.Errorf("builder image %s floats on %s: name an exact release (golang:%s-…), which may not be older than go.mod", img, v, mod)
	} else if version.Compare("go"+v, "go"+mod) < 0 {
		t.Errorf("builder image %s has Go %s, older than go.mod's go %s; with GOTOOLCHAIN=local it cannot build", img, v, mod)
	}
	toolchainLocal := false
	for _, in := range ins {
		toolchainLocal = toolchainLocal || (in.cmd == "ENV" && strings.Contains(in.args, "GOTOOLCHAIN=local"))
	}
	if !toolchainLocal {
		t.Error("Dockerfile does not set GOTOOLCHAIN=local: the build could download another Go")
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`\bGo (\d+\.\d+(?:\.\d+)?)\b`).FindAllStringSubmatch(string(readme), -1)
	if len(named) == 0 {
		t.Error("README does not say which Go the build needs")
	}
	for _, n := range named {
		if n[1] != mod {
			t.Errorf("README names Go %s, go.mod requires %s", n[1], mod)
		}
	}
	if !strings.Contains(string(readme), img) {
		t.Errorf("README does not name the builder image %s", img)
	}
}

// TestHealthcheckSubcommand: the image's HEALTHCHECK runs `/bot
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
