package deploy_test

import (
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the build context of the image (docker build … .) and of
// Compose (context: ..), relative to this package's directory.
const repoRoot = ".."

// dockerignore reads the root .dockerignore with Docker's own parser and
// matcher (the code the Docker CLI and BuildKit use).
func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatalf("no .dockerignore at the repository root: `COPY . .` would send .env files and certificates into the build: %v", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// excluded reports whether the build context leaves out p (slash-separated,
// relative to the context root): p itself or a directory above it matches.
func excluded(t *testing.T, pm *patternmatcher.PatternMatcher, p string) bool {
	t.Helper()
	ok, err := pm.MatchesOrParentMatches(filepath.FromSlash(p))
	if err != nil {
		t.Fatalf("match %s: %v", p, err)
	}
	return ok
}

// secretDocs are the files that tell people where to keep secrets, each
// with the directory its relative paths are relative to: the README's
// commands run from the repository root, Compose resolves paths from the
// compose file's directory (its comments also show commands run from the
// root, so both readings are checked there).
var secretDocs = []struct{ file, base string }{
	{"README.md", "."},
	{".env.example", "."},
	{"deploy/README.md", "."},
	{"deploy/compose.yaml", "deploy"},
	{"deploy/kubernetes/configmap.yaml", "."},
	{"deploy/kubernetes/deployment.yaml", "."},
	{"deploy/kubernetes/secret.example.yaml", "."},
}

// secretFile: names that hold credentials (an env file, a certificate or
// private key); .env.example holds none.
var secretFile = regexp.MustCompile(`\.(env|pem|key|crt|p12|pfx)$`)

// secretPaths returns every path named in text that looks like a secret
// file, relative to the repository root. Absolute paths (container paths
// such as /var/run/secrets/…/tls.pem) are checked as if under the root, so
// the same file name anywhere in a checkout is covered too.
func secretPaths(text, base string) []string {
	var out []string
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-/~", r)
	})
	for _, f := range fields {
		f = strings.TrimRight(f, ".")
		if f == "" || strings.HasPrefix(f, "~") || strings.HasPrefix(f, "//") || !secretFile.MatchString(path.Base(f)) {
			continue
		}
		if strings.HasPrefix(f, "/") {
			out = append(out, strings.TrimPrefix(path.Clean(f), "/"))
			continue
		}
		out = append(out, path.Join(base, f))
		if base != "." {
			out = append(out, path.Clean(f))
		}
	}
	return out
}

// TestDockerignoreSecrets: every place the README, .env.example and the
// deploy files tell people to keep a secret is outside the build context.
func TestDockerignoreSecrets(t *testing.T) {
	pm := dockerignore(t)
	named := map[string][]string{} // path → docs naming it
	for _, d := range secretDocs {
		b, err := os.ReadFile(filepath.Join(repoRoot, d.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range secretPaths(string(b), d.base) {
			if !slices.Contains(named[p], d.file) {
				named[p] = append(named[p], d.file)
			}
		}
	}
	// Compose's env_file, relative to compose.yaml.
	var c composeFile
	unmarshal(t, docs(t, "compose.yaml")[0], &c)
	for name, svc := range c.Services {
		for _, f := range envFiles(svc.EnvFile) {
			p := path.Join("deploy", f)
			named[p] = append(named[p], "compose.yaml "+name+" env_file")
		}
	}
	// The scan must find what the docs are known to name, or it checks
	// nothing; the rest are names a checkout plausibly holds.
	for _, p := range []string{".env", "deploy/.env", "isolate-bot.pem", "deploy/azure-cert.pem"} {
		if _, ok := named[p]; !ok {
			t.Errorf("the docs no longer name %s (or the scan missed it): found %v", p, slices.Sorted(maps.Keys(named)))
		}
	}
	for _, p := range []string{".env.local", "deploy/.env.production", "certs/azure.key", "deploy/tls.crt", "client.pfx", ".git/config"} {
		named[p] = append(named[p], "(plausible)")
	}
	for _, p := range slices.Sorted(maps.Keys(named)) {
		if !excluded(t, pm, p) {
			t.Errorf("%s (named in %v) is not excluded by .dockerignore: `COPY . .` would put it in the image build and its cache", p, named[p])
		}
	}
	// BuildKit prefers <Dockerfile>.dockerignore next to the Dockerfile;
	// one there would replace the root file for docker build and Compose.
	if _, err := os.Stat("Dockerfile.dockerignore"); err == nil {
		t.Error("deploy/Dockerfile.dockerignore exists and would replace the root .dockerignore; keep one file")
	}
}

// envFiles lists a Compose env_file: a string or a list of strings.
func envFiles(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// TestBuildContextIsRoot: docker build (README, Dockerfile header) and
// Compose use the repository root as context, so the root .dockerignore is
// the one that applies.
func TestBuildContextIsRoot(t *testing.T) {
	var c composeFile
	unmarshal(t, docs(t, "compose.yaml")[0], &c)
	b := c.Services["bot"].Build
	if b == nil {
		t.Fatal("compose.yaml bot service has no build section")
	}
	ctx, err := filepath.Abs(b.Context) // relative to compose.yaml's directory, this one
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if ctx != root || b.Dockerfile != "deploy/Dockerfile" {
		t.Errorf("compose build = context %q, dockerfile %q; want the repository root (%s) and deploy/Dockerfile", b.Context, b.Dockerfile, root)
	}
	dockerBuild := regexp.MustCompile(`(?m)^[#\s]*docker build .*-f deploy/Dockerfile.*$`)
	for _, f := range []string{"../README.md", "Dockerfile"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cmds := dockerBuild.FindAllString(string(raw), -1)
		if len(cmds) == 0 {
			t.Errorf("%s shows no `docker build -f deploy/Dockerfile` command", f)
		}
		for _, cmd := range cmds {
			if fs := strings.Fields(cmd); fs[len(fs)-1] != "." {
				t.Errorf("%s: %q does not build from the repository root (.)", f, strings.TrimSpace(cmd))
			}
		}
	}
}

// TestDockerignoreKeepsBuildInputs: nothing `go build ./cmd/bot` reads
// (go.mod, go.sum, the Go files and embedded files of every package of
// this module it imports) is excluded.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	pm := dockerignore(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}`, "./cmd/bot")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"go.mod", "go.sum"}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rel, err := filepath.Rel(root, l)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("go list gave %q outside the module", l)
		}
		inputs = append(inputs, filepath.ToSlash(rel))
	}
	if len(inputs) < 10 || !slices.Contains(inputs, "store/approvals_audit.lua") {
		t.Fatalf("go list found only %d build inputs: %v", len(inputs), inputs)
	}
	for _, p := range inputs {
		if excluded(t, pm, p) {
			t.Errorf("%s is needed by go build ./cmd/bot but .dockerignore excludes it", p)
		}
	}
}
