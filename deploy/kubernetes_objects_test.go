package deploy_test

import (
	"path/filepath"
	"testing"
)

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
