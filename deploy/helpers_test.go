package deploy_test

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/internal/config"
	"sigs.k8s.io/yaml"
)

// secretVars are configuration variables that hold credentials: they must
// come from a Secret, never a ConfigMap, a Dockerfile or compose.yaml.
var secretVars = []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "AZURE_CLIENT_SECRET", "REDIS_URL"}

// ---- YAML helpers --------------------------------------------------------

// docs splits a multi-document YAML file and returns the non-empty documents.
func docs(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(stripComments(cur.Bytes()))) > 0 {
			out = append(out, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " ") == "---" {
			flush()
			continue
		}
		cur.Write(sc.Bytes())
		cur.WriteByte('\n')
	}
	flush()
	return out
}

func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for _, l := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			out.WriteString(l + "\n")
		}
	}
	return out.Bytes()
}

func unmarshal(t *testing.T, doc []byte, v any) {
	t.Helper()
	// Lenient: the structs model only the fields the tests check.
	if err := yaml.Unmarshal(doc, v); err != nil {
		t.Fatalf("yaml: %v", err)
	}
}

type meta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
}

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   meta   `json:"metadata"`
	raw        []byte
	file       string
}

// httpPort is the port of HTTP_ADDR's default, which every file must use.
func httpPort(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(config.DefaultHTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func isVariable(name string) bool { return slices.Contains(config.Variables(), name) }

// TestYAMLParses: every YAML file under deploy/ is valid YAML with at least
// one document.
func TestYAMLParses(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d YAML files: %v", len(files), files)
	}
	for _, f := range files {
		ds := docs(t, f)
		if len(ds) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
		for i, d := range ds {
			var m map[string]any
			if err := yaml.Unmarshal(d, &m); err != nil {
				t.Errorf("%s document %d: %v", f, i, err)
			} else if len(m) == 0 {
				t.Errorf("%s document %d is empty", f, i)
			}
		}
	}
}
