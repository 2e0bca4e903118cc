package deploy_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/config"
)

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

// TestDeployment: the bot's Deployment, one subtest per concern.
func TestDeployment(t *testing.T) {
	objs := k8sObjects(t)
	d, c := botDeployment(t, objs)
	var cm configMap
	find(t, objs, "ConfigMap", "isolate-bot-config", &cm)
	var ex secret
	find(t, objs, "Secret", "isolate-bot", &ex)
	pod := d.Spec.Template.Spec

	t.Run("replicas and image", func(t *testing.T) { checkReplicas(t, d, c) })
	t.Run("ports and probes", func(t *testing.T) { checkProbes(t, c) })
	t.Run("resources and security", func(t *testing.T) { checkResources(t, pod, c) })
	t.Run("graceful shutdown", func(t *testing.T) { checkShutdown(t, pod, cm) })
	t.Run("configuration", func(t *testing.T) { checkConfigSources(t, c, cm, ex) })
}

func checkReplicas(t *testing.T, d workload, c container) {
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
}

func checkProbes(t *testing.T, c container) {
	port := httpPort(t)
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
		if time.Duration(pr.p.TimeoutSeconds)*time.Second <= config.DefaultReadyCheckTimeout {
			t.Errorf("%s probe timeoutSeconds = %d, must exceed the %s check timeout", pr.name, pr.p.TimeoutSeconds, config.DefaultReadyCheckTimeout)
		}
	}
}

func checkResources(t *testing.T, pod podSpec, c container) {
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("no %s request", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("no memory limit")
	}
	checkRestricted(t, "bot container", pod.SecurityContext, c.SecurityContext, 65532)
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: the bot never calls the Kubernetes API")
	}
}

// checkShutdown: the grace period covers SHUTDOWN_TIMEOUT plus margin.
func checkShutdown(t *testing.T, pod podSpec, cm configMap) {
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
}

// checkConfigSources: the ConfigMap through envFrom, credentials from the
// Secret, the certificate credential a read-only mounted Secret.
func checkConfigSources(t *testing.T, c container, cm configMap, ex secret) {
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
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		checkEnvVar(t, e, ex)
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			fromSecret[e.Name] = true
		}
	}
	for _, v := range secretVars {
		if !fromSecret[v] {
			t.Errorf("%s is not read from the Secret", v)
		}
	}
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

func checkEnvVar(t *testing.T, e envVar, ex secret) {
	if !isVariable(e.Name) {
		t.Errorf("env %s is not a variable config.Load reads", e.Name)
	}
	if e.Value != nil && slices.Contains(secretVars, e.Name) {
		t.Errorf("env %s has a literal value; it must come from the Secret", e.Name)
	}
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		return
	}
	ref := e.ValueFrom.SecretKeyRef
	if ref.Name != "isolate-bot" {
		t.Errorf("env %s refers to Secret %q, want isolate-bot", e.Name, ref.Name)
	}
	if _, ok := ex.StringData[ref.Key]; !ok {
		t.Errorf("env %s refers to key %q, absent from secret.example.yaml", e.Name, ref.Key)
	}
	// Only the client secret may be absent (certificate credential).
	if ref.Optional != (e.Name == "AZURE_CLIENT_SECRET") {
		t.Errorf("env %s optional = %v", e.Name, ref.Optional)
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
