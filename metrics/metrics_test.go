package metrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestModelLabelIsBounded(t *testing.T) {
	m := New()
	for i := 0; i < MaxModels+10; i++ {
		m.ObserveRequest("chat_completions", "openai", []byte(fmt.Sprintf("model-%d", i)), 200, 0.01)
	}
	if got := testutil.CollectAndCount(m.requests); got != MaxModels+1 {
		t.Errorf("%d series, want %d (capped models plus other)", got, MaxModels+1)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("chat_completions", "openai", "other", "2xx")); got != 10 {
		t.Errorf("other = %v, want 10", got)
	}
}

func TestObserve(t *testing.T) {
	m := New()
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
