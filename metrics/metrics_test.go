package metrics

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// configured are the model names a test config lists.
var configured = []string{"gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "wedsync-fast", "text-embedding-3-small"}

func TestModelLabelIsConfiguredOrOther(t *testing.T) {
	m := New()
	m.SetModels(configured)
	cases := []struct {
		name, model, want string
	}{
		{"configured", "gpt-4o-mini", "gpt-4o-mini"},
		{"configured alias", "wedsync-fast", "wedsync-fast"},
		{"no model", "", ""},
		{"unlisted", "gpt-5-turbo", OtherModel},
		{"configured prefix", "gpt-4o-mini-2024-07-18", OtherModel},
		{"configured with CR LF", "gpt-4o-mini\r\n", OtherModel},
		{"header split", "gpt-4o\r\nX-Injected: 1", OtherModel},
		{"line feed", "\n", OtherModel},
		{"path climb", "../../admin", OtherModel},
		{"path climb after a name", "gpt-4o/../../admin", OtherModel},
		{"encoded path", "..%2f..%2fadmin", OtherModel},
		{"query", "gpt-4o?api-version=1", OtherModel},
		{"NUL", "gpt-4o\x00", OtherModel},
		{"invalid UTF-8", "\xff\xfe", OtherModel},
		{"case", "GPT-4O-MINI", OtherModel},
		{"the other label itself", "other", OtherModel},
		{"long", strings.Repeat("a", 10000), OtherModel},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := m.model([]byte(c.model)); got != c.want {
				t.Errorf("model(%q) = %q, want %q", c.model, got, c.want)
			}
		})
	}
}

func TestRandomModelsAddNoSeries(t *testing.T) {
	m := New()
	m.SetModels(configured)
	rng := rand.New(rand.NewPCG(1, 2))
	name := make([]byte, 0, 64)
	for i := 0; i < 10000; i++ {
		name = name[:0]
		for n := 1 + rng.IntN(63); n > 0; n-- {
			name = append(name, byte(rng.IntN(256)))
		}
		if slices.Contains(configured, string(name)) {
			continue
		}
		m.ObserveRequest("chat_completions", "openai", name, 200, 0.01)
		m.ObserveUpstream("openai", name, 200, 0.01)
		m.ObserveUsage("openai", name, "platform", 1, 1, 0.001)
	}
	for _, c := range []prometheus.Collector{m.requests, m.upstream, m.cost} {
		if got := testutil.CollectAndCount(c); got != 1 {
			t.Errorf("%d series, want 1 (other)", got)
		}
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("chat_completions", "openai", OtherModel, "2xx")); got != 10000 {
		t.Errorf("other = %v, want 10000", got)
	}
}

func TestNoModelsBeforeTheConfig(t *testing.T) {
	m := New()
	if got := m.model([]byte("gpt-4o-mini")); got != OtherModel {
		t.Errorf("before SetModels: %q, want %q", got, OtherModel)
	}
}

func TestSetModelsReplacesTheSet(t *testing.T) {
	m := New()
	m.SetModels([]string{"gpt-4o-mini", "gpt-4o"})
	m.SetModels([]string{"gpt-4o", "claude-haiku-4-5"})
	for model, want := range map[string]string{
		"gpt-4o-mini":      OtherModel,
		"gpt-4o":           "gpt-4o",
		"claude-haiku-4-5": "claude-haiku-4-5",
	} {
		if got := m.model([]byte(model)); got != want {
			t.Errorf("after the second set, model(%q) = %q, want %q", model, got, want)
		}
	}
	m.SetModels([]string{"", "\xff", "gpt-4o"})
	if got := m.model([]byte("\xff")); got != OtherModel {
		t.Errorf("invalid UTF-8 in the set: %q, want %q", got, OtherModel)
	}
}

func TestSetModelsWhileObserving(t *testing.T) {
	m := New()
	m.SetModels(configured)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model := []byte(configured[i])
			for {
				select {
				case <-stop:
					return
				default:
					if got := m.model(model); got != string(model) && got != OtherModel {
						t.Errorf("model(%q) = %q", model, got)
						return
					}
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		m.SetModels(configured[i%len(configured):])
	}
	close(stop)
	wg.Wait()
}

func TestModelLabelAllocs(t *testing.T) {
	m := New()
	m.SetModels(configured)
	known, unknown := []byte("gpt-4o-mini"), []byte("../../admin\r\n")
	if a := testing.AllocsPerRun(1000, func() { _ = m.model(known) }); a != 0 {
		t.Errorf("%.1f allocations per configured name", a)
	}
	if a := testing.AllocsPerRun(1000, func() { _ = m.model(unknown) }); a != 0 {
		t.Errorf("%.1f allocations per other name", a)
	}
}

func TestObserve(t *testing.T) {
	m := New()
	m.SetModels(configured)
	m.ObserveRequest("embeddings", "openai", []byte("text-embedding-3-small"), 200, 0.02)
	m.ObserveRequest("embeddings", "openai", []byte("text-embedding-3-small"), 200, 0.02)
	m.ObserveRequest("chat_completions", "", nil, 401, 0.001)
	m.ObserveUpstream("openai", []byte("text-embedding-3-small"), 0, 1)
	m.StreamInterrupted("client_gone")
	if got := testutil.ToFloat64(m.requests.WithLabelValues("embeddings", "openai", "text-embedding-3-small", "2xx")); got != 2 {
		t.Errorf("requests = %v", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("chat_completions", "", "", "4xx")); got != 1 {
		t.Errorf("rejected requests = %v", got)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if strings.Contains(l.GetName(), "supplier") {
					t.Errorf("%s has a supplier label", f.GetName())
				}
			}
		}
	}
	if got := testutil.ToFloat64(m.streamsCut.WithLabelValues("client_gone")); got != 1 {
		t.Errorf("streams cut = %v", got)
	}
}

func TestObserveAllocs(t *testing.T) {
	m := New()
	m.SetModels(configured)
	model := []byte("gpt-4o-mini")
	m.ObserveRequest("chat_completions", "openai", model, 200, 0.01)
	if a := testing.AllocsPerRun(100, func() { m.ObserveRequest("chat_completions", "openai", model, 200, 0.01) }); a > 1 {
		t.Errorf("%.1f allocations per observation", a)
	}
}

func TestAlertCounts(t *testing.T) {
	m := New()
	m.AlertSent()
	m.AlertSent()
	m.AlertFailed()
	m.AlertDropped()
	for outcome, want := range map[string]float64{"sent": 2, "failed": 1, "dropped": 1} {
		if got := testutil.ToFloat64(m.alerts.WithLabelValues(outcome)); got != want {
			t.Errorf("veil_alerts_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

func TestOverloadedReasons(t *testing.T) {
	m := New()
	if got := testutil.ToFloat64(m.overloaded.WithLabelValues("", OverloadListener)); got != 0 {
		t.Errorf("listener series at start = %v, want 0", got)
	}
	m.ListenerOverloaded()
	m.ListenerOverloaded()
	m.Overloaded("openai")
	m.SupplierOverloaded("openai")
	m.SupplierOverloaded("openai")
	m.SupplierOverloaded("openai")
	for _, tc := range []struct {
		provider, reason string
		want             float64
	}{
		{"", OverloadListener, 2},
		{"openai", OverloadUpstreamPool, 1},
		{"openai", OverloadSupplierInFlight, 3},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			if got := testutil.ToFloat64(m.overloaded.WithLabelValues(tc.provider, tc.reason)); got != tc.want {
				t.Errorf("veil_overloaded_total{provider=%q,reason=%q} = %v, want %v", tc.provider, tc.reason, got, tc.want)
			}
		})
	}
	if a := testing.AllocsPerRun(100, m.ListenerOverloaded); a != 0 {
		t.Errorf("%.1f allocations per listener shed", a)
	}
}
