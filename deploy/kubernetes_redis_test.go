package deploy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/soc/isolate-bot/internal/config"
)

// TestRedisExample: AOF persistence on a PVC, no eviction (an evicted
// rate-limit log would let the bot exceed MDE's limits) at a maxmemory
// below the memory limit, locked down, and reachable only from the bot.
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
	limit := c.Resources.Limits["memory"]
	if limit == "" {
		t.Error("redis has no memory limit")
	} else {
		checkMaxmemory(t, "redis StatefulSet", c.Args, bytesOf(t, "redis memory limit", limit, k8sUnits, false))
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
