package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wedsync/veil/alert"
	"github.com/wedsync/veil/health"
)

var _ alert.Observer = (*Metrics)(nil)

// healthCollector exports the health registry's view of each provider at
// scrape time: veil_target_up and veil_breaker_state.
type healthCollector struct {
	reg         *health.Registry
	up, breaker *prometheus.Desc
}

// WatchHealth exports the targets of reg.
func (m *Metrics) WatchHealth(reg *health.Registry) {
	m.Registry.MustRegister(&healthCollector{
		reg: reg,
		up: prometheus.NewDesc("veil_target_up",
			"1 when the provider takes calls, 0 while its breaker is open or active probes hold it out.", []string{"provider"}, nil),
		breaker: prometheus.NewDesc("veil_breaker_state",
			"The provider's circuit breaker: 0 closed, 1 half-open, 2 open.", []string{"provider"}, nil),
	})
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.breaker
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.reg.Snapshot() {
		up, state := 1.0, 0.0
		switch s.Breaker {
		case health.HalfOpen:
			state = 1
		case health.Open:
			up, state = 0, 2
		}
		if s.ProbedDown {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, s.Target)
		ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, state, s.Target)
	}
}
