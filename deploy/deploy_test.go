package deploy_test

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/bot"
	"github.com/soc/isolate-bot/internal/config"
	"github.com/soc/isolate-bot/internal/ops"
	"sigs.k8s.io/yaml"
)

// minimalScopes is every bot scope the code may need: the three it uses
// plus users:read, allowed only if the bot ever calls users.info. The
// manifest must ask for no more (least privilege).
var minimalScopes = []string{"commands", "chat:write", "usergroups:read", "users:read"}

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

// k8sObjects reads every document of every manifest in deploy/kubernetes
// (the kustomization excepted).
func k8sObjects(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	var objs []object
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, d := range docs(t, f) {
			var o object
			unmarshal(t, d, &o)
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: a document lacks apiVersion, kind or metadata.name", f)
			}
			o.raw, o.file = d, f
			objs = append(objs, o)
		}
	}
	return objs
}

func find(t *testing.T, objs []object, kind, name string, v any) object {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			unmarshal(t, o.raw, v)
			return o
		}
	}
	t.Fatalf("no %s %q in deploy/kubernetes", kind, name)
	return object{}
}

// ---- Typed subsets of the Kubernetes API (only what the tests check) -----

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"` // name or number
	} `json:"httpGet"`
	Exec *struct {
		Command []string `json:"command"`
	} `json:"exec"`
	TimeoutSeconds int `json:"timeoutSeconds"`
	PeriodSeconds  int `json:"periodSeconds"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `json:"runAsNonRoot"`
	RunAsUser                *int64 `json:"runAsUser"`
	AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
	Privileged               *bool  `json:"privileged"`
	Capabilities             *struct {
		Drop []string `json:"drop"`
		Add  []string `json:"add"`
	} `json:"capabilities"`
	SeccompProfile *struct {
		Type string `json:"type"`
	} `json:"seccompProfile"`
}

type envVar struct {
	Name      string  `json:"name"`
	Value     *string `json:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name     string `json:"name"`
			Key      string `json:"key"`
			Optional bool   `json:"optional"`
		} `json:"secretKeyRef"`
		ConfigMapKeyRef *struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"configMapKeyRef"`
	} `json:"valueFrom"`
}

type container struct {
	Name  string   `json:"name"`
	Image string   `json:"image"`
	Args  []string `json:"args"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env     []envVar `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
	} `json:"envFrom"`
	LivenessProbe  *probe `json:"livenessProbe"`
	ReadinessProbe *probe `json:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	SecurityContext *securityContext `json:"securityContext"`
	VolumeMounts    []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
		ReadOnly  bool   `json:"readOnly"`
	} `json:"volumeMounts"`
}

type podSpec struct {
	ServiceAccountName            string           `json:"serviceAccountName"`
	AutomountServiceAccountToken  *bool            `json:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int64           `json:"terminationGracePeriodSeconds"`
	SecurityContext               *securityContext `json:"securityContext"`
	Containers                    []container      `json:"containers"`
	Volumes                       []struct {
		Name   string `json:"name"`
		Secret *struct {
			SecretName string `json:"secretName"`
			Optional   bool   `json:"optional"`
		} `json:"secret"`
	} `json:"volumes"`
}

type labelSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type workload struct {
	Spec struct {
		Replicas *int          `json:"replicas"`
		Selector labelSelector `json:"selector"`
		Template struct {
			Metadata meta    `json:"metadata"`
			Spec     podSpec `json:"spec"`
		} `json:"template"`
		VolumeClaimTemplates []struct {
			Metadata meta `json:"metadata"`
		} `json:"volumeClaimTemplates"`
	} `json:"spec"`
}

type configMap struct {
	Data map[string]string `json:"data"`
}

type secret struct {
	StringData map[string]string `json:"stringData"`
	Data       map[string]string `json:"data"`
}

type pdb struct {
	Spec struct {
		MinAvailable   any           `json:"minAvailable"`
		MaxUnavailable any           `json:"maxUnavailable"`
		Selector       labelSelector `json:"selector"`
	} `json:"spec"`
}

type npPort struct {
	Port     any    `json:"port"`
	Protocol string `json:"protocol"`
}

type npPeer struct {
	PodSelector       *labelSelector `json:"podSelector"`
	NamespaceSelector *labelSelector `json:"namespaceSelector"`
	IPBlock           any            `json:"ipBlock"`
}

type networkPolicy struct {
	Spec struct {
		PodSelector labelSelector `json:"podSelector"`
		PolicyTypes []string      `json:"policyTypes"`
		Ingress     []struct {
			From  []npPeer `json:"from"`
			Ports []npPort `json:"ports"`
		} `json:"ingress"`
		Egress []struct {
			To    []npPeer `json:"to"`
			Ports []npPort `json:"ports"`
		} `json:"egress"`
	} `json:"spec"`
}

type service struct {
	Spec struct {
		Selector map[string]string `json:"selector"`
		Ports    []struct {
			Port       int `json:"port"`
			TargetPort any `json:"targetPort"`
		} `json:"ports"`
	} `json:"spec"`
}

// ---- Shared expectations -------------------------------------------------

func botDeployment(t *testing.T, objs []object) (workload, container) {
	t.Helper()
	var d workload
	find(t, objs, "Deployment", "isolate-bot", &d)
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment has %d containers, want 1", n)
	}
	return d, d.Spec.Template.Spec.Containers[0]
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

// ---- Tests ---------------------------------------------------------------

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

// TestKustomization: every resource listed exists, every manifest except
// the Secret example is listed (so none is silently left out), and the
// example Secret is not (so applying never overwrites the real one).
func TestKustomization(t *testing.T) {
	var k struct {
		Namespace string   `json:"namespace"`
		Resources []string `json:"resources"`
		Images    []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	unmarshal(t, docs(t, "kubernetes/kustomization.yaml")[0], &k)
	if k.Namespace != "isolate-bot" {
		t.Errorf("kustomization namespace = %q", k.Namespace)
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	var want []string
	for _, f := range files {
		b := filepath.Base(f)
		if b != "kustomization.yaml" && b != "secret.example.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources = %v, want every manifest but the Secret example: %v", got, want)
	}
	if len(k.Images) != 1 || k.Images[0].Name != "isolate-bot" || k.Images[0].NewTag == "" || k.Images[0].NewTag == "latest" {
		t.Errorf("kustomization images = %+v, want one pinned isolate-bot image", k.Images)
	}
}

func TestDeployment(t *testing.T) {
	objs := k8sObjects(t)
	d, c := botDeployment(t, objs)
	pod := d.Spec.Template.Spec
	port := httpPort(t)

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template labels", k, v)
		}
	}
	if c.Image != "isolate-bot" {
		t.Errorf("image = %q, want the name kustomization.yaml rewrites", c.Image)
	}

	// Ports and probes.
	named := map[string]int{}
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	if named["http"] != port {
		t.Errorf("containerPort http = %d, want %d (HTTP_ADDR default)", named["http"], port)
	}
	resolve := func(p any) int {
		switch v := p.(type) {
		case string:
			return named[v]
		case float64:
			return int(v)
		}
		return 0
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%s probe is not an httpGet probe", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || resolve(pr.p.HTTPGet.Port) != port {
			t.Errorf("%s probe = %s on %v, want %s on %d", pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, port)
		}
		// The kubelet must wait longer than one readiness check may take,
		// or the probe times out before /readyz says which check failed.
		if time.Duration(pr.p.TimeoutSeconds)*time.Second <= ops.DefaultCheckTimeout {
			t.Errorf("%s probe timeoutSeconds = %d, must exceed the %s check timeout", pr.name, pr.p.TimeoutSeconds, ops.DefaultCheckTimeout)
		}
	}

	// Resources.
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("no %s request", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("no memory limit")
	}

	// Security context: pod and container.
	checkRestricted(t, "bot container", pod.SecurityContext, c.SecurityContext, 65532)
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: the bot never calls the Kubernetes API")
	}

	// Graceful shutdown: the grace period covers SHUTDOWN_TIMEOUT plus margin.
	var cm configMap
	find(t, objs, "ConfigMap", "isolate-bot-config", &cm)
	shutdown := config.DefaultShutdownTimeout
	if v := cm.Data["SHUTDOWN_TIMEOUT"]; v != "" {
		var err error
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatalf("ConfigMap SHUTDOWN_TIMEOUT: %v", err)
		}
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < shutdown+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds = %v, want ≥ SHUTDOWN_TIMEOUT (%s) + 10s", g, shutdown)
	}
	if v := cm.Data["HTTP_ADDR"]; v != "" && v != config.DefaultHTTPAddr {
		t.Errorf("ConfigMap HTTP_ADDR = %q; probes and policies assume %q", v, config.DefaultHTTPAddr)
	}

	// Configuration: ConfigMap through envFrom, credentials from the Secret.
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "isolate-bot-config" {
		t.Errorf("envFrom = %+v, want the isolate-bot-config ConfigMap only", c.EnvFrom)
	}
	for k := range cm.Data {
		if !isVariable(k) {
			t.Errorf("ConfigMap key %s is not a variable config.Load reads", k)
		}
		if slices.Contains(secretVars, k) {
			t.Errorf("ConfigMap holds %s: credentials belong in the Secret", k)
		}
	}
	var ex secret
	find(t, objs, "Secret", "isolate-bot", &ex)
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if !isVariable(e.Name) {
			t.Errorf("env %s is not a variable config.Load reads", e.Name)
		}
		if e.Value != nil && slices.Contains(secretVars, e.Name) {
			t.Errorf("env %s has a literal value; it must come from the Secret", e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != "isolate-bot" {
				t.Errorf("env %s refers to Secret %q, want isolate-bot", e.Name, ref.Name)
			}
			if _, ok := ex.StringData[ref.Key]; !ok {
				t.Errorf("env %s refers to key %q, absent from secret.example.yaml", e.Name, ref.Key)
			}
			fromSecret[e.Name] = true
			// Only the client secret may be absent (certificate credential).
			if ref.Optional != (e.Name == "AZURE_CLIENT_SECRET") {
				t.Errorf("env %s optional = %v", e.Name, ref.Optional)
			}
		}
	}
	for _, v := range secretVars {
		if !fromSecret[v] {
			t.Errorf("%s is not read from the Secret", v)
		}
	}
	// The certificate credential is a read-only mounted Secret.
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.Name == "azure-cert" {
			mounted = m.ReadOnly
		}
	}
	if !mounted {
		t.Error("the azure-cert Secret volume is not mounted read-only")
	}
}

// checkRestricted asserts the Pod Security "restricted" essentials, from
// the container's context or inherited from the pod's.
func checkRestricted(t *testing.T, what string, pod, c *securityContext, uid int64) {
	t.Helper()
	if c == nil {
		t.Fatalf("%s: no securityContext", what)
	}
	if pod == nil {
		pod = &securityContext{}
	}
	nonRoot := c.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", what)
	}
	user := c.RunAsUser
	if user == nil {
		user = pod.RunAsUser
	}
	if user == nil || *user != uid {
		t.Errorf("%s: runAsUser = %v, want %d", what, user, uid)
	}
	if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", what)
	}
	if c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", what)
	}
	if c.Privileged != nil && *c.Privileged {
		t.Errorf("%s: privileged", what)
	}
	if c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []string{"ALL"}) || len(c.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities = %+v, want drop [ALL] and no add", what, c.Capabilities)
	}
	seccomp := c.SeccompProfile
	if seccomp == nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile is not RuntimeDefault", what)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	objs := k8sObjects(t)
	d, _ := botDeployment(t, objs)
	var p pdb
	find(t, objs, "PodDisruptionBudget", "isolate-bot", &p)
	if p.Spec.MinAvailable != float64(1) || p.Spec.MaxUnavailable != nil {
		t.Errorf("PDB minAvailable = %v, maxUnavailable = %v; want minAvailable 1 only", p.Spec.MinAvailable, p.Spec.MaxUnavailable)
	}
	if !selects(p.Spec.Selector, d.Spec.Template.Metadata.Labels) {
		t.Errorf("PDB selector %v does not select the bot pods", p.Spec.Selector.MatchLabels)
	}
}

// selects reports whether a non-empty selector matches labels.
func selects(s labelSelector, labels map[string]string) bool {
	if len(s.MatchLabels) == 0 {
		return false
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func portNumbers(t *testing.T, ps []npPort) []int {
	t.Helper()
	var out []int
	for _, p := range ps {
		n, ok := p.Port.(float64)
		if !ok {
			t.Fatalf("NetworkPolicy port %v is not a number", p.Port)
		}
		out = append(out, int(n))
	}
	return out
}

func TestNetworkPolicy(t *testing.T) {
	objs := k8sObjects(t)
	d, _ := botDeployment(t, objs)
	var np networkPolicy
	find(t, objs, "NetworkPolicy", "isolate-bot", &np)
	if !selects(np.Spec.PodSelector, d.Spec.Template.Metadata.Labels) {
		t.Fatalf("NetworkPolicy isolate-bot does not select the bot pods")
	}
	types := slices.Clone(np.Spec.PolicyTypes)
	sort.Strings(types)
	if !slices.Equal(types, []string{"Egress", "Ingress"}) {
		t.Errorf("policyTypes = %v, want Ingress and Egress (default deny both ways)", np.Spec.PolicyTypes)
	}

	// Egress: exactly DNS (UDP and TCP), Redis and HTTPS.
	egress := map[int]bool{}
	dnsProtos := map[string]bool{}
	for _, r := range np.Spec.Egress {
		if len(r.Ports) == 0 {
			t.Errorf("egress rule to %+v allows every port", r.To)
		}
		for _, p := range r.Ports {
			n := portNumbers(t, []npPort{p})[0]
			egress[n] = true
			if n == 53 {
				dnsProtos[p.Protocol] = true
			}
		}
	}
	var got []int
	for p := range egress {
		got = append(got, p)
	}
	sort.Ints(got)
	if !slices.Equal(got, []int{53, 443, 6379}) {
		t.Errorf("egress ports = %v, want exactly [53 443 6379]", got)
	}
	if !dnsProtos["UDP"] || !dnsProtos["TCP"] {
		t.Errorf("DNS egress protocols = %v, want UDP and TCP", dnsProtos)
	}

	// Ingress: only the ops port, only from peers we name.
	if len(np.Spec.Ingress) == 0 {
		t.Fatal("no ingress rule: Prometheus could not scrape /metrics")
	}
	for _, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			t.Error("an ingress rule allows every source")
		}
		for _, peer := range r.From {
			if peer.IPBlock != nil {
				t.Errorf("ingress from an ipBlock: %v", peer.IPBlock)
			}
		}
		if ps := portNumbers(t, r.Ports); !slices.Equal(ps, []int{httpPort(t)}) {
			t.Errorf("ingress ports = %v, want only %d", ps, httpPort(t))
		}
	}
}

func TestService(t *testing.T) {
	objs := k8sObjects(t)
	d, _ := botDeployment(t, objs)
	var s service
	find(t, objs, "Service", "isolate-bot", &s)
	if !selects(labelSelector{MatchLabels: s.Spec.Selector}, d.Spec.Template.Metadata.Labels) {
		t.Errorf("Service selector %v does not select the bot pods", s.Spec.Selector)
	}
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != httpPort(t) || s.Spec.Ports[0].TargetPort != "http" {
		t.Errorf("Service ports = %+v, want %d → http", s.Spec.Ports, httpPort(t))
	}
}

// TestRedisExample: AOF persistence on a PVC, no eviction (an evicted
// rate-limit log would let the bot exceed MDE's limits), locked down, and
// reachable only from the bot.
func TestRedisExample(t *testing.T) {
	objs := k8sObjects(t)
	var ss workload
	find(t, objs, "StatefulSet", "redis", &ss)
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Errorf("redis replicas = %v, want 1 (a single primary; use Sentinel or a managed Redis for HA)", ss.Spec.Replicas)
	}
	c := ss.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction", "--dir /data"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis args %q lack %q", args, want)
		}
	}
	if !strings.HasPrefix(c.Image, "redis:7") {
		t.Errorf("redis image = %q, want redis:7…", c.Image)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Metadata.Name != "data" {
		t.Error("redis has no PersistentVolumeClaim template named data")
	}
	if len(c.VolumeMounts) == 0 || c.VolumeMounts[0].MountPath != "/data" {
		t.Errorf("redis data volume not mounted at /data: %+v", c.VolumeMounts)
	}
	checkRestricted(t, "redis container", ss.Spec.Template.Spec.SecurityContext, c.SecurityContext, 999)

	var np networkPolicy
	find(t, objs, "NetworkPolicy", "redis", &np)
	if !selects(np.Spec.PodSelector, ss.Spec.Template.Metadata.Labels) {
		t.Fatal("NetworkPolicy redis does not select the redis pod")
	}
	d, _ := botDeployment(t, objs)
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 ||
		np.Spec.Ingress[0].From[0].PodSelector == nil || !selects(*np.Spec.Ingress[0].From[0].PodSelector, d.Spec.Template.Metadata.Labels) ||
		!slices.Equal(portNumbers(t, np.Spec.Ingress[0].Ports), []int{6379}) {
		t.Errorf("redis ingress = %+v, want 6379 from the bot pods only", np.Spec.Ingress)
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Egress") || len(np.Spec.Egress) != 0 {
		t.Error("redis egress should be denied entirely")
	}

	// The bot's default REDIS_URL in the example points at this Service.
	var ex secret
	find(t, objs, "Secret", "isolate-bot", &ex)
	if !strings.HasPrefix(ex.StringData["REDIS_URL"], "redis://redis:6379") {
		t.Errorf("example REDIS_URL = %q, want the in-cluster redis Service", ex.StringData["REDIS_URL"])
	}
	if _, err := config.ParseRedisURL(ex.StringData["REDIS_URL"]); err != nil {
		t.Errorf("example REDIS_URL does not parse: %v", err)
	}
}

// TestSecretExample: placeholders only, no real-looking credential.
func TestSecretExample(t *testing.T) {
	for i, d := range docs(t, "kubernetes/secret.example.yaml") {
		var s secret
		unmarshal(t, d, &s)
		if len(s.Data) > 0 {
			t.Errorf("document %d uses data:; use stringData with placeholders", i)
		}
		for k, v := range s.StringData {
			if strings.Contains(v, "REPLACE") || (k == "REDIS_URL" && !strings.Contains(v, "@")) {
				continue
			}
			t.Errorf("secret.example.yaml %s = %q is not an obvious placeholder", k, v)
		}
	}
}

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

func TestCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Image       string            `json:"image"`
			Command     []string          `json:"command"`
			EnvFile     any               `json:"env_file"`
			Environment map[string]string `json:"environment"`
			DependsOn   map[string]struct {
				Condition string `json:"condition"`
			} `json:"depends_on"`
			Healthcheck *struct {
				Test []string `json:"test"`
			} `json:"healthcheck"`
			ReadOnly        bool     `json:"read_only"`
			User            string   `json:"user"`
			CapDrop         []string `json:"cap_drop"`
			StopGracePeriod string   `json:"stop_grace_period"`
			Ports           []string `json:"ports"`
			SecurityOpt     []string `json:"security_opt"`
			Volumes         []string `json:"volumes"`
		} `json:"services"`
	}
	unmarshal(t, docs(t, "compose.yaml")[0], &c)
	botSvc, ok := c.Services["bot"]
	if !ok {
		t.Fatal("compose.yaml has no bot service")
	}
	redis, ok := c.Services["redis"]
	if !ok {
		t.Fatal("compose.yaml has no redis service")
	}
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image = %q, want Redis 7", redis.Image)
	}
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	if redis.Healthcheck == nil || !slices.Contains(redis.Healthcheck.Test, "ping") {
		t.Error("redis has no redis-cli ping healthcheck")
	}
	if len(redis.Ports) > 0 {
		t.Errorf("redis publishes ports %v; only the bot should reach it", redis.Ports)
	}
	if len(redis.Volumes) == 0 || !strings.HasSuffix(redis.Volumes[0], ":/data") {
		t.Errorf("redis data is not on a volume at /data: %v", redis.Volumes)
	}
	if botSvc.DependsOn["redis"].Condition != "service_healthy" {
		t.Errorf("bot depends_on redis = %+v, want condition service_healthy", botSvc.DependsOn)
	}
	if botSvc.EnvFile != ".env" {
		t.Errorf("bot env_file = %v, want .env", botSvc.EnvFile)
	}
	for k, v := range botSvc.Environment {
		if !isVariable(k) {
			t.Errorf("compose environment %s is not a variable config.Load reads", k)
		}
		if slices.Contains(secretVars, k) && strings.Contains(v, "@") {
			t.Errorf("compose environment %s holds a credential; put it in .env", k)
		}
		if k != "REDIS_URL" && slices.Contains(secretVars, k) {
			t.Errorf("compose environment sets %s; credentials belong in .env", k)
		}
	}
	if !botSvc.ReadOnly || botSvc.User != "65532:65532" || !slices.Equal(botSvc.CapDrop, []string{"ALL"}) {
		t.Errorf("bot service not locked down: read_only=%v user=%q cap_drop=%v", botSvc.ReadOnly, botSvc.User, botSvc.CapDrop)
	}
	if !slices.Contains(botSvc.SecurityOpt, "no-new-privileges:true") {
		t.Error("bot service lacks no-new-privileges")
	}
	grace, err := time.ParseDuration(botSvc.StopGracePeriod)
	if err != nil || grace < config.DefaultShutdownTimeout+5*time.Second {
		t.Errorf("bot stop_grace_period = %q, want ≥ SHUTDOWN_TIMEOUT + 5s", botSvc.StopGracePeriod)
	}
	for _, p := range botSvc.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("bot publishes %q beyond loopback", p)
		}
	}
}

// TestSlackManifest: the manifest declares exactly the commands the bot
// registers, asks only for the scopes the code uses, and runs in Socket
// Mode with interactivity.
func TestSlackManifest(t *testing.T) {
	var m struct {
		Features struct {
			SlashCommands []struct {
				Command      string `json:"command"`
				Description  string `json:"description"`
				UsageHint    string `json:"usage_hint"`
				ShouldEscape *bool  `json:"should_escape"`
				URL          string `json:"url"`
			} `json:"slash_commands"`
			BotUser struct {
				DisplayName string `json:"display_name"`
			} `json:"bot_user"`
		} `json:"features"`
		OAuthConfig struct {
			Scopes struct {
				Bot  []string `json:"bot"`
				User []string `json:"user"`
			} `json:"scopes"`
			RedirectURLs []string `json:"redirect_urls"`
		} `json:"oauth_config"`
		Settings struct {
			Interactivity struct {
				IsEnabled  bool   `json:"is_enabled"`
				RequestURL string `json:"request_url"`
			} `json:"interactivity"`
			SocketModeEnabled  bool `json:"socket_mode_enabled"`
			EventSubscriptions any  `json:"event_subscriptions"`
		} `json:"settings"`
	}
	unmarshal(t, docs(t, "slack-app-manifest.yaml")[0], &m)

	var cmds []string
	hints := map[string]string{}
	for _, c := range m.Features.SlashCommands {
		cmds = append(cmds, c.Command)
		hints[c.Command] = c.UsageHint
		if c.ShouldEscape == nil || *c.ShouldEscape {
			t.Errorf("%s: should_escape must be false (the bot escapes itself)", c.Command)
		}
		if c.URL != "" {
			t.Errorf("%s has a request URL; Socket Mode needs none", c.Command)
		}
		if c.Description == "" {
			t.Errorf("%s has no description", c.Command)
		}
	}
	if !slices.Equal(cmds, bot.SlashCommands) {
		t.Errorf("manifest commands = %v, bot.SlashCommands = %v", cmds, bot.SlashCommands)
	}
	for cmd, want := range map[string]string{
		"/isolate":   "<machine> full|selective|unmanaged <comment> · status <machine> · help",
		"/unisolate": "<machine> <comment>",
	} {
		if hints[cmd] != want {
			t.Errorf("%s usage_hint = %q, want %q", cmd, hints[cmd], want)
		}
	}

	scopes := m.OAuthConfig.Scopes.Bot
	for _, s := range scopes {
		if !slices.Contains(minimalScopes, s) {
			t.Errorf("bot scope %q is outside the minimal set %v", s, minimalScopes)
		}
	}
	got, want := slices.Clone(scopes), slices.Clone(bot.BotScopes)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("manifest bot scopes = %v, bot.BotScopes = %v", got, want)
	}
	if len(m.OAuthConfig.Scopes.User) > 0 {
		t.Errorf("user scopes %v requested; the bot acts only as itself", m.OAuthConfig.Scopes.User)
	}
	if !m.Settings.SocketModeEnabled {
		t.Error("socket_mode_enabled is not true")
	}
	if !m.Settings.Interactivity.IsEnabled || m.Settings.Interactivity.RequestURL != "" {
		t.Error("interactivity must be enabled, without a request URL (Socket Mode)")
	}
	if m.Settings.EventSubscriptions != nil {
		t.Error("event subscriptions declared; the bot handles none")
	}
}

// TestKustomizeBuild renders the kustomization with kubectl when it is
// installed (kubeconform is not in Debian's archive; kubectl is on the dev
// image). With kubeconform on PATH it also validates the rendered objects
// against the Kubernetes schemas (which kubeconform must find offline).
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; skipping the kustomize render check")
	}
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	kinds := map[string]int{}
	for _, d := range bytes.Split(out, []byte("\n---\n")) {
		var o object
		unmarshal(t, d, &o)
		kinds[o.Kind]++
		if o.Kind != "Namespace" && o.Metadata.Namespace != "isolate-bot" {
			t.Errorf("%s %s rendered in namespace %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		if o.Metadata.Labels["app.kubernetes.io/part-of"] != "isolate-bot" {
			t.Errorf("%s %s lacks the part-of label", o.Kind, o.Metadata.Name)
		}
		if o.Kind == "Secret" {
			t.Errorf("the kustomization renders a Secret (%s); it would overwrite the real one", o.Metadata.Name)
		}
	}
	if kinds["Deployment"] != 1 || kinds["PodDisruptionBudget"] != 1 || kinds["NetworkPolicy"] != 2 {
		t.Errorf("rendered kinds = %v", kinds)
	}
	if !bytes.Contains(out, []byte("image: registry.example.com/soc/isolate-bot:0.1.0")) {
		t.Error("kustomize did not rewrite the bot image")
	}
	if kc, err := exec.LookPath("kubeconform"); err == nil {
		cmd := exec.Command(kc, "-strict", "-summary", "-")
		cmd.Stdin = bytes.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("kubeconform: %v\n%s", err, b)
		}
	}
}

// TestHealthcheckSubcommand: the Dockerfile's HEALTHCHECK runs `/bot
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
