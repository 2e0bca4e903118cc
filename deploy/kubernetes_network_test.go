package deploy_test

import (
	"maps"
	"slices"
	"sort"
	"testing"
)

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
	if !slices.Equal(got, []int{53, 443, 6379, 26379}) {
		t.Errorf("egress ports = %v, want exactly [53 443 6379 26379]", got)
	}
	checkSentinelEgress(t, np)
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

// checkSentinelEgress: the Redis rule allows Sentinel (26379) and the
// master it names (6379) to the same destinations, over TCP. Told to
// "change the port" to 26379, people cut the client off from the master.
func checkSentinelEgress(t *testing.T, np networkPolicy) {
	t.Helper()
	redisRules := 0
	for _, r := range np.Spec.Egress {
		tcp := map[int]bool{}
		for _, p := range r.Ports {
			if n := portNumbers(t, []npPort{p})[0]; p.Protocol == "TCP" || p.Protocol == "" {
				tcp[n] = true
			}
		}
		if !tcp[6379] && !tcp[26379] {
			continue
		}
		redisRules++
		if !tcp[6379] || !tcp[26379] {
			t.Errorf("the Redis egress rule allows TCP %v; want both 6379 (Redis, the Sentinel master) and 26379 (Sentinel)", slices.Sorted(maps.Keys(tcp)))
		}
	}
	if redisRules != 1 {
		t.Errorf("%d egress rules reach Redis, want 1", redisRules)
	}
}
