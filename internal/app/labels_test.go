package app

import (
	"fmt"
	"strings"
	"testing"
)

// TestModelLabelsFollowTheConfig: the model label values are the names the
// config in force lists, from the first generation on; an applied reload
// replaces them and a refused one does not.
func TestModelLabelsFollowTheConfig(t *testing.T) {
	env := testEnv{"K": "sk-test", "T": "veil-test"}
	parse := env.parse
	first := strings.Replace(reloadYAML, `api_key: env://K}`, `api_key: env://K, models: [gpt-4o-mini]}`, 1)
	a := env.start(t, first)
	// label observes one upstream attempt for model under a provider name
	// of its own and returns the model label the series got.
	calls := 0
	label := func(t *testing.T, model string) string {
		t.Helper()
		calls++
		provider := fmt.Sprintf("probe-%d", calls)
		a.metrics.ObserveUpstream(provider, []byte(model), 200, 0.01)
		families, err := a.metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "veil_upstream_duration_seconds" {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["provider"] == provider {
					return labels["model"]
				}
			}
		}
		t.Fatalf("no series for %s", provider)
		return ""
	}
	check := func(t *testing.T, want map[string]string) {
		t.Helper()
		for model, w := range want {
			if got := label(t, model); got != w {
				t.Errorf("model %q is labelled %q, want %q", model, got, w)
			}
		}
	}

	check(t, map[string]string{"gpt-4o-mini": "gpt-4o-mini", "wedsync-fast": "other", "gpt-4o": "other"})

	second := strings.Replace(reloadYAML, "usage:", "aliases: {wedsync-fast: gpt-4o}\nusage:", 1)
	if err := a.Reload(parse(t, second)); err != nil {
		t.Fatal(err)
	}
	check(t, map[string]string{"gpt-4o-mini": "other", "wedsync-fast": "wedsync-fast", "gpt-4o": "gpt-4o"})

	refused := strings.Replace(second, "disable_probes: true", "disable_probes: true\n  breaker_failures: 9", 1)
	refused = strings.Replace(refused, "wedsync-fast: gpt-4o", "wedsync-fast: gpt-4o, wedsync-smart: o3", 1)
	if err := a.Reload(parse(t, refused)); err == nil {
		t.Fatal("a reload changing limits was applied")
	}
	check(t, map[string]string{"wedsync-smart": "other", "o3": "other", "wedsync-fast": "wedsync-fast"})
}
