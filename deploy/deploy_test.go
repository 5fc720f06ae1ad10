package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/config"
)

const (
	k8sDir        = "kubernetes"
	kustomizeFile = "kustomization.yaml"
	configKey     = "veil.yaml"
	veilImage     = "wedsync/veil"
	secretName    = "veil"
)

// noEnv is an empty environment: the config is parsed without VEIL_*
// overrides and its secret references are never resolved.
func noEnv(string) (string, bool) { return "", false }

// kustomization is the part of kustomize's Kustomization that the manifests
// use; decoding is strict, so a field outside it fails the test.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
	} `json:"labels"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

// newObject returns the Kubernetes type a document of apiVersion and kind
// decodes into.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case monitoringV1 + " ServiceMonitor":
		return &serviceMonitor{}, nil
	case monitoringV1 + " PrometheusRule":
		return &prometheusRule{}, nil
	}
	return nil, fmt.Errorf("no Kubernetes type for apiVersion %q kind %q", apiVersion, kind)
}

var (
	separator = regexp.MustCompile(`(?m)^---\s*$`)
	comment   = regexp.MustCompile(`(?m)^\s*#.*$`)
)

// decodeDocuments decodes every YAML document of data strictly into its
// Kubernetes type: unknown or duplicate fields and wrong types are errors.
func decodeDocuments(data []byte) ([]any, error) {
	var out []any
	for i, doc := range separator.Split(string(data), -1) {
		if strings.TrimSpace(comment.ReplaceAllString(doc, "")) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, errors.New("no documents")
	}
	return out, nil
}

// manifests is deploy/kubernetes, decoded.
type manifests struct {
	files      []string // manifest files, without the kustomization
	kust       kustomization
	deployment *appsv1.Deployment
	configMap  *corev1.ConfigMap
	account    *corev1.ServiceAccount
	pdb        *policyv1.PodDisruptionBudget
	service    *corev1.Service
	netpol     *networkingv1.NetworkPolicy
	monitor    *serviceMonitor
	rule       *prometheusRule
	configText string
	config     *config.Config
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(p)
		if name == kustomizeFile {
			if err := yaml.UnmarshalStrict(data, &m.kust); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			continue
		}
		m.files = append(m.files, name)
		objs, err := decodeDocuments(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, obj := range objs {
			switch o := obj.(type) {
			case *appsv1.Deployment:
				set(t, &m.deployment, o, name)
			case *corev1.ConfigMap:
				set(t, &m.configMap, o, name)
			case *corev1.ServiceAccount:
				set(t, &m.account, o, name)
			case *policyv1.PodDisruptionBudget:
				set(t, &m.pdb, o, name)
			case *corev1.Service:
				set(t, &m.service, o, name)
			case *networkingv1.NetworkPolicy:
				set(t, &m.netpol, o, name)
			case *serviceMonitor:
				set(t, &m.monitor, o, name)
			case *prometheusRule:
				set(t, &m.rule, o, name)
			case *corev1.Secret:
				t.Errorf("%s: a Secret in git; secret values are created out of band", name)
			}
		}
	}
	if m.deployment == nil || m.configMap == nil || m.account == nil || m.pdb == nil || m.service == nil ||
		m.netpol == nil || m.monitor == nil || m.rule == nil {
		t.Fatalf("want a Deployment, a ConfigMap, a ServiceAccount, a PodDisruptionBudget, a Service, a NetworkPolicy, "+
			"a ServiceMonitor and a PrometheusRule in %s", k8sDir)
	}
	m.configText = m.configMap.Data[configKey]
	m.config, err = config.ParseWithEnv([]byte(m.configText), "configmap.yaml: "+configKey, noEnv)
	if err != nil {
		t.Fatalf("the ConfigMap's %s is not a valid veil config:\n%v", configKey, err)
	}
	return m
}

func set[T any](t *testing.T, dst **T, v *T, file string) {
	t.Helper()
	if *dst != nil {
		t.Fatalf("%s: a second %T; the checks expect one", file, v)
	}
	*dst = v
}

func (m *manifests) pod() *corev1.PodSpec { return &m.deployment.Spec.Template.Spec }

// veil returns the veil container: the init container running veil's image.
func (m *manifests) veil(t *testing.T) *corev1.Container {
	t.Helper()
	for i, c := range m.pod().InitContainers {
		if c.Image == veilImage || strings.HasPrefix(c.Image, veilImage+":") {
			return &m.pod().InitContainers[i]
		}
	}
	t.Fatalf("no init container runs %s", veilImage)
	return nil
}

// app returns the main container.
func (m *manifests) app(t *testing.T) *corev1.Container {
	t.Helper()
	if n := len(m.pod().Containers); n != 1 {
		t.Fatalf("%d main containers, want the app alone", n)
	}
	return &m.pod().Containers[0]
}

// allContainers is every container of the pod, init containers first.
func (m *manifests) allContainers() []corev1.Container {
	return append(slices.Clone(m.pod().InitContainers), m.pod().Containers...)
}

// flag returns the value of --name in args (as "--name V" or "--name=V").
func flag(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func port(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return host, n
}

// containerPort resolves a probe's port, by number or by name.
func containerPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

// volume returns the pod volume called name.
func (m *manifests) volume(t *testing.T, name string) *corev1.Volume {
	t.Helper()
	for i := range m.pod().Volumes {
		if m.pod().Volumes[i].Name == name {
			return &m.pod().Volumes[i]
		}
	}
	t.Fatalf("no volume %q", name)
	return nil
}

// mountOf returns the mount of c that holds file, the deepest one.
func mountOf(c *corev1.Container, file string) (*corev1.VolumeMount, string, bool) {
	var best *corev1.VolumeMount
	rel := ""
	for i, vm := range c.VolumeMounts {
		r, ok := strings.CutPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if ok && (best == nil || len(vm.MountPath) > len(best.MountPath)) {
			best, rel = &c.VolumeMounts[i], r
		}
	}
	return best, rel, best != nil
}

// referencedFiles lists the files veil's config reads: file:// secret
// references, the Vault CA and the service account token.
func (m *manifests) referencedFiles() []string {
	var files []string
	for _, s := range regexp.MustCompile(`file://(/[^\s"']+)`).FindAllStringSubmatch(m.configText, -1) {
		files = append(files, s[1])
	}
	for _, f := range []string{m.config.Vault.CACert, m.config.Vault.Auth.TokenFile, m.config.Vault.ClientCert, m.config.Vault.ClientKey} {
		if f != "" {
			files = append(files, f)
		}
	}
	sort.Strings(files)
	return slices.Compact(files)
}

func read(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestDecodeIsStrict makes sure the decoder the manifests pass refuses what
// the API server or kubectl would.
func TestDecodeIsStrict(t *testing.T) {
	const sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n"
	tests := []struct {
		name, doc string
		ok        bool
	}{
		{"valid", sa, true},
		{"two documents", sa + "---\n" + sa, true},
		{"unknown field", sa + "automountToken: false\n", false},
		{"unknown nested field", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: veil\n          restart: Always\n", false},
		{"duplicate field", sa + "metadata:\n  name: b\n", false},
		{"wrong type", "apiVersion: v1\nkind: ConfigMap\ndata:\n  veil.yaml: [1]\n", false},
		{"bad quantity", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          resources:\n            limits:\n              memory: lots\n", false},
		{"unknown kind", "apiVersion: v1\nkind: Pet\n", false},
		{"empty", "# nothing\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeDocuments([]byte(tt.doc))
			if (err == nil) != tt.ok {
				t.Errorf("decode error = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestKustomization(t *testing.T) {
	m := loadManifests(t)
	k := m.kust
	images := map[string]string{}
	for _, im := range k.Images {
		images[im.Name] = im.NewTag + im.Digest
	}
	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"kind", func(t *testing.T) {
			if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
				t.Errorf("apiVersion %q kind %q", k.APIVersion, k.Kind)
			}
		}},
		{"namespace", func(t *testing.T) {
			if k.Namespace == "" {
				t.Error("no namespace: the Vault role is bound to one")
			}
		}},
		{"lists every file", func(t *testing.T) {
			got := slices.Sorted(slices.Values(k.Resources))
			if want := slices.Sorted(slices.Values(m.files)); !slices.Equal(got, want) {
				t.Errorf("resources %v, want the manifests %v", got, want)
			}
		}},
		{"pins every image", func(t *testing.T) {
			for _, c := range m.allContainers() {
				tag, ok := images[c.Image]
				if !ok || tag == "" || tag == "latest" {
					t.Errorf("container %s: image %q has no pinned tag in images (%q)", c.Name, c.Image, tag)
				}
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}
}

func TestDeployment(t *testing.T) {
	m := loadManifests(t)
	pod := m.pod()
	veil := m.veil(t)
	app := m.app(t)
	cfg := m.config
	proxyHost, proxyPort := port(t, cfg.Listen.Proxy)
	adminHost, adminPort := port(t, cfg.Listen.Admin)

	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"veil is a native sidecar", func(t *testing.T) {
			if veil.RestartPolicy == nil || *veil.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				got := "unset"
				if veil.RestartPolicy != nil {
					got = string(*veil.RestartPolicy)
				}
				t.Errorf("veil init container restartPolicy %s, want Always", got)
			}
			if len(pod.InitContainers) != 1 {
				t.Errorf("%d init containers, want veil alone", len(pod.InitContainers))
			}
		}},
		{"veil serves the mounted config", func(t *testing.T) {
			if len(veil.Command) != 0 || len(veil.Args) == 0 || veil.Args[0] != "serve" {
				t.Fatalf("command %q args %q, want the image's entrypoint with serve", veil.Command, veil.Args)
			}
			file, ok := flag(veil.Args, "config")
			if !ok {
				t.Fatal("no --config")
			}
			vm, rel, ok := mountOf(veil, file)
			if !ok {
				t.Fatalf("--config %s is on no volume", file)
			}
			if vm.SubPath != "" {
				t.Errorf("config mounted with subPath %q: ConfigMap edits would not reach the pod", vm.SubPath)
			}
			v := m.volume(t, vm.Name)
			if v.ConfigMap == nil || v.ConfigMap.Name != m.configMap.Name || rel != configKey {
				t.Errorf("--config %s is not key %s of ConfigMap %s", file, configKey, m.configMap.Name)
			}
		}},
		{"the app points at the proxy", func(t *testing.T) {
			want := fmt.Sprintf("http://%s/v1", net.JoinHostPort(proxyHost, strconv.Itoa(proxyPort)))
			var base, key *corev1.EnvVar
			for i, e := range app.Env {
				switch e.Name {
				case "OPENAI_BASE_URL":
					base = &app.Env[i]
				case "OPENAI_API_KEY":
					key = &app.Env[i]
				}
			}
			if base == nil || base.Value != want {
				t.Errorf("OPENAI_BASE_URL = %+v, want %s", base, want)
			}
			if key == nil || key.ValueFrom == nil || key.ValueFrom.SecretKeyRef == nil {
				t.Errorf("OPENAI_API_KEY = %+v, want the caller token from a Secret", key)
			}
		}},
		{"listeners", func(t *testing.T) {
			if ip := net.ParseIP(proxyHost); proxyHost != "localhost" && (ip == nil || !ip.IsLoopback()) {
				t.Errorf("listen.proxy %s is not loopback: the proxy is for this pod's app only", cfg.Listen.Proxy)
			}
			if adminHost != "" && adminHost != "0.0.0.0" && adminHost != "::" {
				t.Errorf("listen.admin %s: the kubelet and Prometheus reach the pod IP, so it listens on all interfaces", cfg.Listen.Admin)
			}
			if cfg.Admin.Token.Scheme() != config.SchemeFile {
				t.Errorf("admin.token %q, want a file:// reference to the mounted Secret", cfg.Admin.Token)
			}
		}},
		{"probes use the admin listener", func(t *testing.T) {
			probes := []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{
				{"startup", veil.StartupProbe, "/healthz"},
				{"liveness", veil.LivenessProbe, "/healthz"},
				{"readiness", veil.ReadinessProbe, "/readyz"},
			}
			for _, p := range probes {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s probe %+v, want an HTTP GET", p.name, p.probe)
					continue
				}
				if got := containerPort(t, veil, p.probe.HTTPGet.Port); got != adminPort {
					t.Errorf("%s probe on port %d, want the admin port %d", p.name, got, adminPort)
				}
				if p.probe.HTTPGet.Path != p.path {
					t.Errorf("%s probe path %q, want %s", p.name, p.probe.HTTPGet.Path, p.path)
				}
			}
		}},
		{"metrics are scraped from the admin port", func(t *testing.T) {
			a := m.deployment.Spec.Template.Annotations
			if a["prometheus.io/port"] != strconv.Itoa(adminPort) || a["prometheus.io/path"] != "/metrics" {
				t.Errorf("scrape annotations %v, want port %d path /metrics", a, adminPort)
			}
		}},
		{"grace period outlasts the drain", func(t *testing.T) {
			v, ok := flag(veil.Args, "drain-timeout")
			if !ok {
				t.Fatal("no --drain-timeout: the grace period is checked against it")
			}
			drain, err := time.ParseDuration(v)
			if err != nil {
				t.Fatal(err)
			}
			if pod.TerminationGracePeriodSeconds == nil {
				t.Fatal("no terminationGracePeriodSeconds")
			}
			if grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; grace <= drain {
				t.Errorf("terminationGracePeriodSeconds %v, want more than the drain timeout %v", grace, drain)
			}
		}},
		{"non-root", func(t *testing.T) {
			psc := pod.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
				t.Fatalf("pod securityContext %+v, want runAsNonRoot and a non-zero runAsUser", psc)
			}
			for _, c := range m.allContainers() {
				if sc := c.SecurityContext; sc != nil && (sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot || sc.RunAsUser != nil && *sc.RunAsUser == 0) {
					t.Errorf("container %s runs as root", c.Name)
				}
			}
		}},
		{"locked-down containers", func(t *testing.T) {
			for _, c := range m.allContainers() {
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("container %s has no securityContext", c.Name)
					continue
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("container %s: root file system is writable", c.Name)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("container %s is privileged", c.Name)
				}
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					t.Errorf("container %s: capabilities %+v, want ALL dropped and none added", c.Name, sc.Capabilities)
				}
				seccomp := pod.SecurityContext.SeccompProfile
				if sc.SeccompProfile != nil {
					seccomp = sc.SeccompProfile
				}
				if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("container %s: seccomp profile %+v, want RuntimeDefault", c.Name, seccomp)
				}
			}
		}},
		{"resources on every container", func(t *testing.T) {
			for _, c := range m.allContainers() {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, okReq := c.Resources.Requests[r]
					lim, okLim := c.Resources.Limits[r]
					if !okReq || !okLim || req.IsZero() || lim.IsZero() {
						t.Errorf("container %s: %s request %v limit %v, want both", c.Name, r, req.String(), lim.String())
					} else if req.Cmp(lim) > 0 {
						t.Errorf("container %s: %s request %v above its limit %v", c.Name, r, req.String(), lim.String())
					}
				}
			}
		}},
		{"GOMEMLIMIT leaves headroom under the memory limit", func(t *testing.T) {
			lim := veil.Resources.Limits[corev1.ResourceMemory]
			var env *corev1.EnvVar
			for i := range veil.Env {
				if veil.Env[i].Name == "GOMEMLIMIT" {
					env = &veil.Env[i]
				}
			}
			if env == nil || env.ValueFrom != nil {
				t.Fatalf("GOMEMLIMIT %+v, want a value of its own", env)
			}
			soft, err := parseGoMemLimit(env.Value)
			if err != nil {
				t.Fatal(err)
			}
			if ratio := float64(soft) / float64(lim.Value()); ratio < 0.80 || ratio > 0.90 {
				t.Errorf("GOMEMLIMIT %s is %.0f%% of the memory limit %s, want 80%% to 90%%", env.Value, ratio*100, lim.String())
			}
		}},
		{"the response cache fits veil's memory", func(t *testing.T) {
			lim := veil.Resources.Limits[corev1.ResourceMemory]
			if !cfg.Cache.On() {
				return
			}
			if cfg.Cache.MaxCostBytes > lim.Value()/2 {
				t.Errorf("cache.max_cost_bytes %d is over half of veil's memory limit %v", cfg.Cache.MaxCostBytes, lim.String())
			}
		}},
		{"every file veil reads is mounted", func(t *testing.T) {
			files := m.referencedFiles()
			if len(files) == 0 {
				t.Fatal("the config names no file")
			}
			used := map[string]bool{}
			for _, f := range files {
				vm, rel, ok := mountOf(veil, f)
				if !ok {
					t.Errorf("%s is on no volume of the veil container", f)
					continue
				}
				v := m.volume(t, vm.Name)
				switch {
				case v.Secret != nil:
					if !slices.ContainsFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == rel }) {
						t.Errorf("%s: Secret %s mounts no item at %s", f, v.Secret.SecretName, rel)
					}
					used[vm.Name+"/"+rel] = true
				case v.Projected != nil:
					if !slices.ContainsFunc(v.Projected.Sources, func(s corev1.VolumeProjection) bool {
						return s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == rel
					}) {
						t.Errorf("%s: the projected volume %s has no token at %s", f, v.Name, rel)
					}
				default:
					t.Errorf("%s is on volume %s, which is neither a Secret nor a projected token", f, v.Name)
				}
			}
			for _, v := range pod.Volumes {
				if v.Secret == nil {
					continue
				}
				for _, it := range v.Secret.Items {
					if !used[v.Name+"/"+it.Path] {
						t.Errorf("Secret item %s of volume %s is mounted but the config never reads it", it.Key, v.Name)
					}
				}
			}
		}},
		{"Vault Kubernetes auth", func(t *testing.T) {
			if pod.ServiceAccountName != m.account.Name {
				t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, m.account.Name)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the API token is mounted into every container; only veil gets a token, for Vault")
			}
			v := cfg.Vault
			if !v.Enabled || v.Auth.Method != "kubernetes" || v.Auth.Role == "" {
				t.Errorf("vault %+v, want Kubernetes auth with a role", v)
			}
			if aud := tokenAudience(t, m, veil, v.Auth.TokenFile); aud == "" {
				t.Errorf("the Vault token %s has no audience", v.Auth.TokenFile)
			}
		}},
		{"selectors match the pods", func(t *testing.T) {
			labels := m.deployment.Spec.Template.Labels
			for name, sel := range map[string]*metav1.LabelSelector{"deployment": m.deployment.Spec.Selector, "pdb": m.pdb.Spec.Selector} {
				if sel == nil || len(sel.MatchLabels) == 0 {
					t.Errorf("%s has no selector", name)
				}
				for k, v := range sel.MatchLabels {
					if labels[k] != v {
						t.Errorf("%s selects %s=%s, which the pods do not carry", name, k, v)
					}
				}
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}
}

// tokenAudience returns the audience of the projected service account
// token at file.
func tokenAudience(t *testing.T, m *manifests, c *corev1.Container, file string) string {
	t.Helper()
	vm, rel, ok := mountOf(c, file)
	if !ok {
		t.Fatalf("%s is not mounted", file)
	}
	v := m.volume(t, vm.Name)
	if v.Projected != nil {
		for _, s := range v.Projected.Sources {
			if tok := s.ServiceAccountToken; tok != nil && tok.Path == rel {
				return tok.Audience
			}
		}
	}
	t.Fatalf("%s is not a projected service account token", file)
	return ""
}

// TestProbePathsExist asks veil's admin handler the paths the probes use, so
// that a renamed endpoint fails here and not in a cluster.
func TestProbePathsExist(t *testing.T) {
	m := loadManifests(t)
	veil := m.veil(t)
	notReady := errors.New("draining")
	tests := []struct {
		name  string
		probe *corev1.Probe
		ready error
		want  int
	}{
		{"startup", veil.StartupProbe, nil, fasthttp.StatusOK},
		{"liveness", veil.LivenessProbe, nil, fasthttp.StatusOK},
		{"liveness while draining", veil.LivenessProbe, notReady, fasthttp.StatusOK},
		{"readiness", veil.ReadinessProbe, nil, fasthttp.StatusOK},
		{"readiness while draining", veil.ReadinessProbe, notReady, fasthttp.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.probe == nil || tt.probe.HTTPGet == nil {
				t.Fatal("no HTTP probe")
			}
			srv := admin.New(admin.Options{Ready: func() error { return tt.ready }})
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(fasthttp.MethodGet)
			ctx.Request.SetRequestURI(tt.probe.HTTPGet.Path)
			srv.Handle(&ctx)
			if got := ctx.Response.StatusCode(); got != tt.want {
				t.Errorf("GET %s = %d, want %d", tt.probe.HTTPGet.Path, got, tt.want)
			}
		})
	}
}

// TestVaultSide checks the Vault role script and README against the
// manifests, and the policy against the paths the config reads.
func TestVaultSide(t *testing.T) {
	m := loadManifests(t)
	veil := m.veil(t)
	v := m.config.Vault
	aud := tokenAudience(t, m, veil, v.Auth.TokenFile)
	ns, sa := m.kust.Namespace, m.account.Name

	docs := []struct {
		file string
		want []string
	}{
		{filepath.Join(k8sDir, "vault-role.sh"), []string{
			"NAMESPACE:-" + ns + "}", "SERVICE_ACCOUNT:-" + sa + "}", "/role/" + v.Auth.Role + `"`,
			"audience=" + aud, "token_policies=veil", `vault policy write veil "$here/../vault/veil.hcl"`,
		}},
		{filepath.Join(k8sDir, "README.md"), []string{
			"vault write auth/kubernetes/role/" + v.Auth.Role, "bound_service_account_names=" + sa,
			"bound_service_account_namespaces=" + ns, "audience=" + aud, "token_policies=veil",
		}},
	}
	for _, d := range docs {
		t.Run(filepath.Base(d.file), func(t *testing.T) {
			text := read(t, d.file)
			for _, w := range d.want {
				// w, not the start of a longer word.
				if !regexp.MustCompile(regexp.QuoteMeta(w) + `([^A-Za-z0-9_.-]|$)`).MatchString(text) {
					t.Errorf("%s does not say %q", d.file, w)
				}
			}
		})
	}

	t.Run("Secret keys", func(t *testing.T) {
		readme := read(t, filepath.Join(k8sDir, "README.md"))
		var keys []string
		for _, vol := range m.pod().Volumes {
			if vol.Secret != nil && vol.Secret.SecretName == secretName {
				for _, it := range vol.Secret.Items {
					keys = append(keys, it.Key)
				}
			}
		}
		for _, c := range m.allContainers() {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == secretName {
					keys = append(keys, e.ValueFrom.SecretKeyRef.Key)
				}
			}
		}
		if len(keys) == 0 {
			t.Fatalf("nothing uses the Secret %s", secretName)
		}
		for _, k := range keys {
			if !strings.Contains(readme, " --from-file="+k+"=") {
				t.Errorf("README's kubectl create secret command has no key %s", k)
			}
		}
	})

	t.Run("policy covers the paths", func(t *testing.T) {
		policy := read(t, filepath.Join("vault", "veil.hcl"))
		var granted []string
		for _, s := range regexp.MustCompile(`(?m)^path "([^"]+)"\s*\{\s*capabilities\s*=\s*\[[^\]]*"read"`).FindAllStringSubmatch(policy, -1) {
			granted = append(granted, s[1])
		}
		supplier := strings.NewReplacer("{supplier}", "bella-photography", "{provider}", "openai").Replace(v.SupplierPath)
		need := []string{v.KVMount + "/data/" + supplier, v.KVMount + "/metadata/" + supplier}
		for _, p := range m.config.Providers {
			for _, ref := range p.PlatformKeys() {
				if ref.Scheme() != config.SchemeVault {
					continue
				}
				mount, rest, _ := strings.Cut(strings.TrimPrefix(string(ref), "vault://"), "/")
				rest, _, _ = strings.Cut(rest, "#")
				need = append(need, mount+"/data/"+rest, mount+"/metadata/"+rest)
			}
		}
		for _, n := range need {
			if !slices.ContainsFunc(granted, func(g string) bool {
				prefix, glob := strings.CutSuffix(g, "*")
				return g == n || glob && strings.HasPrefix(n, prefix)
			}) {
				t.Errorf("deploy/vault/veil.hcl grants no read on %s (granted: %v)", n, granted)
			}
		}
	})
}

// metricLabels is every series name a freshly started veil exports, before
// any traffic, with its label names: histograms as _bucket (with le), _sum
// and _count. veil runs the WedSync peak example config, which names every
// kind of label value (providers, models, tiers, seasons).
func metricLabels(t *testing.T) map[string][]string {
	t.Helper()
	a := startLocal(t, localConfig(t, read(t, peakExample)))
	families, err := a.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range families {
		var labels []string
		if len(f.GetMetric()) > 0 {
			for _, l := range f.GetMetric()[0].GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		name := f.GetName()
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"] = append(slices.Clone(labels), "le")
			out[name+"_sum"], out[name+"_count"] = labels, labels
		case dto.MetricType_SUMMARY:
			out[name] = append(slices.Clone(labels), "quantile")
			out[name+"_sum"], out[name+"_count"] = labels, labels
		default:
			out[name] = labels
		}
	}
	return out
}

// targetLabels are added by Prometheus to every scraped series; the
// ServiceMonitor's service discovery adds namespace and pod.
var targetLabels = []string{"job", "instance", "namespace", "pod"}

var (
	metricName  = regexp.MustCompile(`\b(?:veil|go|process)_[a-zA-Z0-9_]+`)
	selector    = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcher     = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	grouping    = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	labelValues = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// queryProblems lists what is wrong with expr: a metric veil does not
// export, or a label its metrics do not have (and Prometheus does not add).
func queryProblems(known map[string][]string, expr string) []string {
	var problems []string
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		problems = append(problems, "uses no veil metric")
	}
	allowed := slices.Clone(targetLabels)
	for _, n := range names {
		labels, ok := known[n]
		if !ok {
			problems = append(problems, "veil exports no metric "+n)
		}
		allowed = append(allowed, labels...)
	}
	for _, s := range selector.FindAllStringSubmatch(expr, -1) {
		labels, ok := known[s[1]]
		if !ok {
			continue // reported above, or a function call
		}
		for _, l := range matcher.FindAllStringSubmatch(s[2], -1) {
			if !slices.Contains(labels, l[1]) && !slices.Contains(targetLabels, l[1]) {
				problems = append(problems, fmt.Sprintf("%s has no label %s (labels: %v)", s[1], l[1], labels))
			}
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(allowed, l) {
				problems = append(problems, "groups by "+l+", which none of its metrics has")
			}
		}
	}
	return problems
}

// panel is the part of a Grafana panel the test reads.
type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("grafana", "veil.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatal("grafana/veil.json is not valid JSON")
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	known := metricLabels(t)

	dsVar := ""
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = v.Name
		}
	}
	t.Run("dashboard", func(t *testing.T) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("uid %q title %q", d.UID, d.Title)
		}
		if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
			t.Errorf("schemaVersion %d, want a current one (about 39)", d.SchemaVersion)
		}
		if dsVar == "" {
			t.Error("no Prometheus datasource variable")
		}
	})
	t.Run("variables", func(t *testing.T) {
		for _, v := range d.Templating.List {
			q, _ := v.Query.(map[string]any)
			s, _ := v.Query.(string)
			if q != nil {
				s, _ = q["query"].(string)
			}
			for _, lv := range labelValues.FindAllStringSubmatch(s, -1) {
				labels, ok := known[lv[1]]
				if !ok || !slices.Contains(append(labels, targetLabels...), lv[2]) {
					t.Errorf("variable %s: %s has no label %s", v.Name, lv[1], lv[2])
				}
			}
		}
	})

	used := map[string]bool{}
	ids := map[int]string{}
	for _, p := range flatten(d.Panels) {
		t.Run(p.Title, func(t *testing.T) {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panel id %d also belongs to %q", p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("no gridPos")
			}
			if p.Type == "row" {
				return
			}
			if len(p.Targets) == 0 {
				t.Fatal("no queries")
			}
			wantDS := `"${` + dsVar + `}"`
			if !bytes.Contains(p.Datasource, []byte(wantDS)) {
				t.Errorf("panel datasource %s, want uid %s", p.Datasource, wantDS)
			}
			for _, q := range p.Targets {
				if q.Datasource != nil && !bytes.Contains(q.Datasource, []byte(wantDS)) {
					t.Errorf("query %s datasource %s, want uid %s", q.RefID, q.Datasource, wantDS)
				}
				for _, p := range queryProblems(known, q.Expr) {
					t.Errorf("query %s %q: %s", q.RefID, q.Expr, p)
				}
				for _, n := range metricName.FindAllString(q.Expr, -1) {
					used[n] = true
				}
			}
		})
	}

	t.Run("coverage", func(t *testing.T) {
		for _, want := range []string{
			"veil_requests_total", "veil_request_duration_seconds_bucket", "veil_upstream_duration_seconds_bucket",
			"veil_upstream_duration_seconds_count", "veil_breaker_state", "veil_target_up", "veil_cache_hits_total",
			"veil_cache_misses_total", "veil_tokens_total", "veil_cost_usd_total", "veil_streams_interrupted_total",
			"veil_retries_denied_total", "veil_provider_headroom_ratio", "veil_quota_refusals_total", "veil_ttft_seconds_bucket",
			"veil_season_active", "veil_stream_duration_seconds_bucket", "veil_build_info",
		} {
			if !used[want] {
				t.Errorf("no panel shows %s", want)
			}
		}
	})
}

// TestQueryProblems makes sure the dashboard check catches what it is for.
func TestQueryProblems(t *testing.T) {
	known := metricLabels(t)
	tests := []struct {
		name, expr string
		ok         bool
	}{
		{"labels and target labels", `sum by (provider) (rate(veil_requests_total{status_class="5xx", instance=~"$instance"}[5m]))`, true},
		{"histogram bucket", `histogram_quantile(0.99, sum by (le) (rate(veil_request_duration_seconds_bucket[5m])))`, true},
		{"collector without labels", `sum(rate(veil_cache_hits_total[5m])) / sum(rate(veil_cache_misses_total[5m]))`, true},
		{"misspelt metric", `sum(rate(veil_request_total[5m]))`, false},
		{"unknown label in a selector", `sum(rate(veil_requests_total{supplier="bella"}[5m]))`, false},
		{"unknown label in by", `sum by (supplier) (rate(veil_requests_total[5m]))`, false},
		{"label of another metric", `sum(rate(veil_cache_hits_total{provider="openai"}[5m]))`, false},
		{"no metric", `vector(1)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := queryProblems(known, tt.expr)
			if (len(problems) == 0) != tt.ok {
				t.Errorf("%q: problems %q, want ok = %v", tt.expr, problems, tt.ok)
			}
		})
	}
}

// TestDocLinks checks that the relative links of the deployment guide and
// the runbook lead to files that exist.
func TestDocLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#\s]+)(?:#[^)]*)?\)`)
	for _, doc := range []string{filepath.Join(k8sDir, "README.md"), filepath.Join("..", "docs", "operations.md")} {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			text := read(t, doc)
			links := link.FindAllStringSubmatch(text, -1)
			if len(links) == 0 {
				t.Fatal("no links")
			}
			for _, l := range links {
				target := l[1]
				if strings.Contains(target, "://") {
					continue
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
					t.Errorf("link %s: %v", target, err)
				}
			}
		})
	}
}
