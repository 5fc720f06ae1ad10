package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/wedsync/veil/config"
)

// monitoringV1 is the API version of Prometheus Operator's resources.
const monitoringV1 = "monitoring.coreos.com/v1"

// peakExample is the example config for WedSync's many replicas, which
// names every kind of label value.
const peakExample = "examples/wedsync-peak.yaml"

// serviceMonitor is the part of Prometheus Operator's ServiceMonitor that
// the manifests use, under the CRD's field names; decoding is strict, so a
// misspelt or unknown field fails the test.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any"`
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string       `json:"port"`
			Path          string       `json:"path"`
			Scheme        string       `json:"scheme"`
			Interval      string       `json:"interval"`
			ScrapeTimeout string       `json:"scrapeTimeout"`
			Relabelings   []relabeling `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// relabeling is one relabeling of a ServiceMonitor endpoint.
type relabeling struct {
	SourceLabels []string `json:"sourceLabels"`
	Separator    string   `json:"separator"`
	TargetLabel  string   `json:"targetLabel"`
	Regex        string   `json:"regex"`
	Replacement  string   `json:"replacement"`
	Action       string   `json:"action"`
}

// alertRule is one rule of a PrometheusRule group.
type alertRule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// prometheusRule is the part of Prometheus Operator's PrometheusRule that
// the manifests use.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string      `json:"name"`
			Interval string      `json:"interval"`
			Rules    []alertRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// rules is every rule of the PrometheusRule.
func (r *prometheusRule) rules() []alertRule {
	var out []alertRule
	for _, g := range r.Spec.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// parseGoMemLimit reads a GOMEMLIMIT value: bytes, with an optional unit
// B, KiB, MiB, GiB or TiB, as the Go runtime does.
func parseGoMemLimit(v string) (int64, error) {
	units := []struct {
		suffix string
		scale  int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	scale := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, scale = n, u.scale
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("GOMEMLIMIT %q is not a positive size", v)
	}
	return n * scale, nil
}

func TestParseGoMemLimit(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"218MiB", 218 << 20, true},
		{"1GiB", 1 << 30, true},
		{"4096", 4096, true},
		{"100B", 100, true},
		{"256Mi", 0, false},
		{"", 0, false},
		{"-1MiB", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseGoMemLimit(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseGoMemLimit(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

// dashboardQueries returns every PromQL expression of the Grafana
// dashboard: its panels' queries and its variables' queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("grafana", "veil.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range flatten(d.Panels) {
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		switch q := v.Query.(type) {
		case string:
			exprs = append(exprs, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	return exprs
}

// fromConfigLists are the families whose every label value is a name from
// one list of the config: a config whose list is empty has nothing for
// them to count, and no series.
var fromConfigLists = map[string]func(*config.Config) bool{
	"veil_quota_refusals_total": func(c *config.Config) bool { return len(c.Tiers) == 0 },
	"veil_season_active":        func(c *config.Config) bool { return len(c.Seasons) == 0 },
}

// TestMetricsExistAtStart: every metric the dashboard and the alert rules
// query is on /metrics of a veil that has just started and served nothing,
// so that no panel says "No data" and no increase() misses a first event.
// veil runs the ConfigMap's config and the peak example, with what they
// reach outside the process swapped for local stand-ins.
func TestMetricsExistAtStart(t *testing.T) {
	m := loadManifests(t)
	queried := map[string][]string{} // metric -> where
	for _, e := range dashboardQueries(t) {
		for _, n := range metricName.FindAllString(e, -1) {
			queried[n] = append(queried[n], "grafana/veil.json")
		}
	}
	for _, r := range m.rule.rules() {
		for _, n := range metricName.FindAllString(r.Expr, -1) {
			queried[n] = append(queried[n], "prometheusrule.yaml "+r.Alert)
		}
	}
	if len(queried) < 30 {
		t.Fatalf("only %d metrics found in the dashboard and the rules", len(queried))
	}
	for _, c := range []struct{ name, text string }{
		{"configmap.yaml", m.configText},
		{peakExample, read(t, peakExample)},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := localConfig(t, c.text)
			names := scrape(t, startLocal(t, cfg))
			for _, n := range slices.Sorted(func(yield func(string) bool) {
				for n := range queried {
					if !yield(n) {
						return
					}
				}
			}) {
				if names[n] {
					continue
				}
				if empty, ok := fromConfigLists[strings.TrimSuffix(n, "_bucket")]; ok && empty(cfg) {
					continue
				}
				t.Errorf("%s (queried by %s) is not on /metrics right after start", n, strings.Join(slices.Compact(slices.Clone(queried[n])), ", "))
			}
		})
	}
}

// TestEveryFamilyAtStart: every veil_ family the registry describes, not
// only those the dashboard and rules use, has a series on /metrics of a
// veil that has just started with the peak example, which names every kind
// of label value.
func TestEveryFamilyAtStart(t *testing.T) {
	a := startLocal(t, localConfig(t, read(t, peakExample)))
	names := scrape(t, a)
	ch := make(chan *prometheus.Desc)
	go func() {
		a.Metrics().Registry.Describe(ch)
		close(ch)
	}()
	n := 0
	for d := range ch {
		s := descName.FindStringSubmatch(d.String())
		if len(s) < 2 || !strings.HasPrefix(s[1], "veil_") {
			continue
		}
		n++
		if !names[s[1]] && !names[s[1]+"_count"] {
			t.Errorf("%s is not on /metrics right after start", s[1])
		}
	}
	if n < 30 {
		t.Errorf("only %d veil_ families described", n)
	}
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

func TestServiceMonitor(t *testing.T) {
	m := loadManifests(t)
	svc, mon := m.service, m.monitor
	veil := m.veil(t)
	_, adminPort := port(t, m.config.Listen.Admin)
	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the Service selects the pods", func(t *testing.T) {
			labels := m.deployment.Spec.Template.Labels
			if len(svc.Spec.Selector) == 0 {
				t.Fatal("no selector")
			}
			for k, v := range svc.Spec.Selector {
				if labels[k] != v {
					t.Errorf("selects %s=%s, which the pods do not carry", k, v)
				}
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("clusterIP %q, want None: the Service is for the ServiceMonitor's endpoints only", svc.Spec.ClusterIP)
			}
		}},
		{"the Service's port is veil's admin port", func(t *testing.T) {
			if len(svc.Spec.Ports) != 1 {
				t.Fatalf("%d ports, want the admin port alone", len(svc.Spec.Ports))
			}
			if got := containerPort(t, veil, svc.Spec.Ports[0].TargetPort); got != adminPort {
				t.Errorf("targetPort %v is %d, want the admin listener's %d", svc.Spec.Ports[0].TargetPort.String(), got, adminPort)
			}
		}},
		{"the ServiceMonitor selects the Service", func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(&mon.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Fatalf("selector %v: %v", mon.Spec.Selector, err)
			}
			if !sel.Matches(labelSet(svc.Labels)) {
				t.Errorf("selector %s does not match the Service's labels %v", sel, svc.Labels)
			}
			if mon.Spec.NamespaceSelector != nil {
				t.Error("a namespaceSelector: the Service is in the ServiceMonitor's own namespace")
			}
		}},
		{"it scrapes /metrics on the admin port", func(t *testing.T) {
			if len(mon.Spec.Endpoints) != 1 {
				t.Fatalf("%d endpoints, want 1", len(mon.Spec.Endpoints))
			}
			e := mon.Spec.Endpoints[0]
			if e.Port != svc.Spec.Ports[0].Name || e.Path != "/metrics" || e.Scheme != "http" {
				t.Errorf("port %q path %q scheme %q, want the Service's port %q, /metrics over http", e.Port, e.Path, e.Scheme, svc.Spec.Ports[0].Name)
			}
			interval, err1 := time.ParseDuration(e.Interval)
			timeout, err2 := time.ParseDuration(e.ScrapeTimeout)
			if err1 != nil || err2 != nil || timeout <= 0 || timeout >= interval {
				t.Errorf("interval %q scrapeTimeout %q, want a timeout below the interval", e.Interval, e.ScrapeTimeout)
			}
		}},
		{"instance is the pod's name", func(t *testing.T) {
			e := mon.Spec.Endpoints[0]
			if !slices.ContainsFunc(e.Relabelings, func(r relabeling) bool {
				return r.TargetLabel == "instance" && slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_name"}) &&
					(r.Action == "" || r.Action == "replace")
			}) {
				t.Error("no relabeling of instance to the pod name, which the dashboard's Pod variable and the alerts show")
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

// runbookBase is where the alerts' runbook links point.
const runbookBase = "https://github.com/wedsync/veil/blob/main/docs/operations.md#"

// slug is the anchor GitHub gives a Markdown heading.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

var (
	heading      = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)
	labelRef     = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	alertName    = regexp.MustCompile(`^Veil[A-Z][A-Za-z]+$`)
	promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
)

// balanced reports whether the brackets of expr pair up, outside strings.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for i, r := range expr {
		switch {
		case r == '"' && (i == 0 || expr[i-1] != '\\'):
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}

func TestPrometheusRule(t *testing.T) {
	m := loadManifests(t)
	known := metricLabels(t)
	anchors := map[string]bool{}
	for _, h := range heading.FindAllStringSubmatch(read(t, filepath.Join("..", "docs", "operations.md")), -1) {
		anchors[slug(h[1])] = true
	}
	rules := m.rule.rules()
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	seen := map[string]bool{}
	for _, r := range rules {
		t.Run(r.Alert, func(t *testing.T) {
			if !alertName.MatchString(r.Alert) || r.Record != "" {
				t.Errorf("alert %q record %q, want an alert named Veil...", r.Alert, r.Record)
			}
			if seen[r.Alert] {
				t.Errorf("a second alert %s", r.Alert)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("severity %q, want warning or critical", s)
			}
			if r.For != "" && !promDuration.MatchString(r.For) {
				t.Errorf("for %q is not a Prometheus duration", r.For)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Error("no summary or description")
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
			if !ok || !anchors[anchor] {
				t.Errorf("runbook_url %q, want %s and the anchor of a heading of docs/operations.md", r.Annotations["runbook_url"], runbookBase)
			}
			if anchor != strings.ToLower(r.Alert) {
				t.Errorf("runbook anchor %q, want the alert's own section %q", anchor, strings.ToLower(r.Alert))
			}
			if !balanced(r.Expr) {
				t.Errorf("unbalanced brackets in %q", r.Expr)
			}
			for _, p := range queryProblems(known, r.Expr) {
				t.Errorf("expr %q: %s", r.Expr, p)
			}
			var grouped []string
			for _, g := range grouping.FindAllStringSubmatch(r.Expr, -1) {
				for l := range strings.SplitSeq(g[1], ",") {
					grouped = append(grouped, strings.TrimSpace(l))
				}
			}
			for _, a := range r.Annotations {
				for _, ref := range labelRef.FindAllStringSubmatch(a, -1) {
					if !slices.Contains(grouped, ref[1]) {
						t.Errorf("an annotation shows $labels.%s, which the expression does not keep (by %v)", ref[1], grouped)
					}
				}
			}
		})
	}
	t.Run("coverage", func(t *testing.T) {
		for alert, metric := range map[string]string{
			"VeilProviderDown":        "veil_target_up",
			"VeilProviderHeadroomLow": "veil_provider_headroom_ratio",
			"VeilQuotaRefusalsRising": "veil_quota_refusals_total",
			"VeilUsageRecordsDropped": "veil_usage_sink_records_total",
			"VeilKeysServedStale":     "veil_keys_served_stale_total",
		} {
			i := slices.IndexFunc(rules, func(r alertRule) bool { return r.Alert == alert })
			if i < 0 {
				t.Errorf("no alert %s", alert)
			} else if !strings.Contains(rules[i].Expr, metric) {
				t.Errorf("%s does not read %s", alert, metric)
			}
		}
		i := slices.IndexFunc(rules, func(r alertRule) bool { return r.Alert == "VeilProviderHeadroomLow" })
		if i >= 0 && !strings.Contains(rules[i].Expr, "veil_season_active") {
			t.Error("VeilProviderHeadroomLow is not limited to the peak season")
		}
	})
}

// TestRuleChecksCatchMistakes makes sure the rule checks fail on what they
// are for.
func TestRuleChecksCatchMistakes(t *testing.T) {
	for _, tt := range []struct {
		expr string
		ok   bool
	}{
		{`sum by (namespace) (rate(veil_requests_total[5m])) > 0`, true},
		{`sum by (namespace) (rate(veil_requests_total[5m]) > 0`, false},
		{`sum(rate(veil_requests_total{status_class="5xx"[5m]))`, false},
		{`veil_target_up{provider="a)b"} == 0`, true},
	} {
		if got := balanced(tt.expr); got != tt.ok {
			t.Errorf("balanced(%q) = %v, want %v", tt.expr, got, tt.ok)
		}
	}
	for h, want := range map[string]string{"VeilProviderDown": "veilproviderdown", "Alerts and what to do": "alerts-and-what-to-do",
		"Prometheus alerts (PrometheusRule)": "prometheus-alerts-prometheusrule"} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
}

// egressAllows reports whether some egress rule of np lets the pod reach
// port over TCP, with to (when set) holding for one of the rule's peers.
func egressAllows(np *networkingv1.NetworkPolicy, port int, proto corev1.Protocol, to func(networkingv1.NetworkPolicyPeer) bool) bool {
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			if p.Port == nil || p.Port.Type != intstr.Int || p.Port.IntValue() != port || pp != proto {
				continue
			}
			if to == nil || slices.ContainsFunc(r.To, to) {
				return true
			}
		}
	}
	return false
}

// hostPort is the port of a URL or host:port, with the scheme's default.
func hostPort(t *testing.T, s string) int {
	t.Helper()
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		if p := u.Port(); p != "" {
			n, _ := strconv.Atoi(p)
			return n
		}
		if u.Scheme == "https" {
			return 443
		}
		return 80
	}
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func TestNetworkPolicy(t *testing.T) {
	m := loadManifests(t)
	np, cfg := m.netpol, m.config
	_, adminPort := port(t, cfg.Listen.Admin)
	_, proxyPort := port(t, cfg.Listen.Proxy)
	// ingressPort resolves a rule's port, by number or by a container's
	// port name.
	ingressPort := func(t *testing.T, p networkingv1.NetworkPolicyPort) int {
		t.Helper()
		if p.Port == nil {
			t.Fatal("a rule for every port")
		}
		if p.Port.Type == intstr.Int {
			return p.Port.IntValue()
		}
		for _, c := range m.allContainers() {
			for _, cp := range c.Ports {
				if cp.Name == p.Port.StrVal {
					return int(cp.ContainerPort)
				}
			}
		}
		t.Fatalf("no container port is named %q", p.Port.StrVal)
		return 0
	}
	public := func(p networkingv1.NetworkPolicyPeer) bool {
		return p.IPBlock != nil && p.IPBlock.CIDR == "0.0.0.0/0" && slices.Contains(p.IPBlock.Except, "10.0.0.0/8") &&
			slices.Contains(p.IPBlock.Except, "169.254.0.0/16")
	}
	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"it selects the pods, both ways", func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil || sel.Empty() || !sel.Matches(labelSet(m.deployment.Spec.Template.Labels)) {
				t.Errorf("podSelector %v does not select the pods (%v)", np.Spec.PodSelector, err)
			}
			if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
			}
		}},
		{"no rule opens everything", func(t *testing.T) {
			for i, r := range np.Spec.Ingress {
				if len(r.From) == 0 || len(r.Ports) == 0 {
					t.Errorf("ingress rule %d allows every source or every port", i)
				}
			}
			for i, r := range np.Spec.Egress {
				if len(r.To) == 0 || len(r.Ports) == 0 {
					t.Errorf("egress rule %d allows every destination or every port", i)
				}
			}
		}},
		{"the admin port only from the monitoring namespace", func(t *testing.T) {
			found := false
			for _, r := range np.Spec.Ingress {
				for _, p := range r.Ports {
					if ingressPort(t, p) != adminPort {
						continue
					}
					found = true
					for _, from := range r.From {
						ns := from.NamespaceSelector
						if from.IPBlock != nil || ns == nil || len(ns.MatchLabels) != 1 || ns.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
							t.Errorf("the admin port %d is open to %+v, want the monitoring namespace only", adminPort, from)
						}
					}
				}
			}
			if !found {
				t.Errorf("no rule lets Prometheus reach the admin port %d", adminPort)
			}
		}},
		{"the proxy port from no other pod", func(t *testing.T) {
			for _, r := range np.Spec.Ingress {
				for _, p := range r.Ports {
					if ingressPort(t, p) == proxyPort {
						t.Errorf("an ingress rule opens the proxy port %d; the app reaches it over loopback", proxyPort)
					}
				}
			}
		}},
		{"DNS", func(t *testing.T) {
			for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
				if !egressAllows(np, 53, proto, nil) {
					t.Errorf("no egress to DNS over %s", proto)
				}
			}
		}},
		{"Vault", func(t *testing.T) {
			if p := hostPort(t, cfg.Vault.Address); cfg.Vault.Enabled && !egressAllows(np, p, corev1.ProtocolTCP, nil) {
				t.Errorf("no egress to Vault's port %d (%s)", p, cfg.Vault.Address)
			}
		}},
		{"Redis", func(t *testing.T) {
			addrs := append([]string{cfg.Store.Addr}, cfg.Store.Addrs...)
			addrs = append(addrs, cfg.Store.Sentinel.Addrs...)
			for _, a := range addrs {
				if a != "" && !egressAllows(np, hostPort(t, a), corev1.ProtocolTCP, nil) {
					t.Errorf("no egress to the store at %s", a)
				}
			}
		}},
		{"the providers, on the internet", func(t *testing.T) {
			for _, p := range cfg.Providers {
				if port := hostPort(t, p.BaseURL); !egressAllows(np, port, corev1.ProtocolTCP, public) {
					t.Errorf("no egress to provider %s's port %d on public addresses", p.Name, port)
				}
			}
		}},
		{"the alert webhook", func(t *testing.T) {
			if u := cfg.Alerts.Webhook.URL; u != "" && !egressAllows(np, hostPort(t, u), corev1.ProtocolTCP, nil) {
				t.Errorf("no egress to the alert webhook's port")
			}
		}},
		{"the tracing collector", func(t *testing.T) {
			if u := cfg.Tracing.OTLPEndpoint; u != "" && !egressAllows(np, hostPort(t, u), corev1.ProtocolTCP, nil) {
				t.Errorf("no egress to the tracing collector's port (%s)", u)
			}
		}},
		{"JWT issuers", func(t *testing.T) {
			for _, is := range cfg.JWT.Issuers {
				if port := hostPort(t, is.Issuer); !egressAllows(np, port, corev1.ProtocolTCP, nil) {
					t.Errorf("no egress to the issuer %s", is.Issuer)
				}
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}
}
