package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wedsync/veil/tracing"
)

// tracingCollector exports the span export's counters at scrape time.
type tracingCollector struct {
	stats         func() tracing.Stats
	spans, queued *prometheus.Desc
}

// WatchTracing exports the counters stats reads:
// veil_tracing_spans_total{result} (exported, failed: lost with an export
// that failed, dropped: the queue was full) and veil_tracing_queued_spans.
func (m *Metrics) WatchTracing(stats func() tracing.Stats) {
	m.Registry.MustRegister(&tracingCollector{
		stats: stats,
		spans: prometheus.NewDesc("veil_tracing_spans_total",
			"Sampled spans by what became of them: exported, failed (an export that failed), dropped (the queue was full).",
			[]string{"result"}, nil),
		queued: prometheus.NewDesc("veil_tracing_queued_spans", "Spans waiting for export.", nil, nil),
	})
}

func (c *tracingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.spans
	ch <- c.queued
}

func (c *tracingCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, r := range [...]struct {
		result string
		n      uint64
	}{{"exported", s.Exported}, {"failed", s.Failed}, {"dropped", s.Dropped}} {
		ch <- prometheus.MustNewConstMetric(c.spans, prometheus.CounterValue, float64(r.n), r.result)
	}
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
}
