package deploy_test

import (
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
