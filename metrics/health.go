package metrics

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wedsync/veil/alert"
	"github.com/wedsync/veil/health"
)

var _ alert.Observer = (*Metrics)(nil)

// Kinds of veil_provider_headroom_ratio: the provider's request and token
// rate limits.
const (
	HeadroomRequests = "requests"
	HeadroomTokens   = "tokens"
)

// healthCollector exports the health registry's view of each provider at
// scrape time: veil_target_up, veil_breaker_state and
// veil_provider_headroom_ratio.
type healthCollector struct {
	reg                   *health.Registry
	up, breaker, headroom *prometheus.Desc
}

var _ prometheus.Collector = (*healthCollector)(nil)

// WatchHealth exports the targets of reg.
func (m *Metrics) WatchHealth(reg *health.Registry) {
	m.Registry.MustRegister(&healthCollector{
		reg: reg,
		up: prometheus.NewDesc("veil_target_up",
			"1 when the provider takes calls, 0 while its breaker is open or active probes hold it out.", []string{"provider"}, nil),
		breaker: prometheus.NewDesc("veil_breaker_state",
			"The provider's circuit breaker: 0 closed, 1 half-open, 2 open.", []string{"provider"}, nil),
		headroom: prometheus.NewDesc("veil_provider_headroom_ratio",
			"Share of the provider's rate limit left for the platform keys, by kind (requests, tokens): "+
				"x-ratelimit-remaining-* over x-ratelimit-limit-*, each summed over the accounts of its pool "+
				"(organisations, or keys where it names none) as each last answered a platform-key call; "+
				"NaN until it has sent both.", []string{"provider", "kind"}, nil),
	})
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.breaker
	ch <- c.headroom
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
		reqLeft, reqLimit, tokLeft, tokLimit := s.RemainingRequests, s.LimitRequests, s.RemainingTokens, s.LimitTokens
		if p := s.Pool; p != nil {
			reqLeft, reqLimit, tokLeft, tokLimit = p.Requests.Remaining, p.Requests.Limit, p.Tokens.Remaining, p.Tokens.Limit
		}
		ch <- prometheus.MustNewConstMetric(c.headroom, prometheus.GaugeValue, headroom(reqLeft, reqLimit), s.Target, HeadroomRequests)
		ch <- prometheus.MustNewConstMetric(c.headroom, prometheus.GaugeValue, headroom(tokLeft, tokLimit), s.Target, HeadroomTokens)
	}
}

// headroom is remaining over limit, within [0, 1]; NaN when either is
// unknown or the limit is zero, so that no comparison with it holds.
func headroom(remaining, limit *int64) float64 {
	if remaining == nil || limit == nil || *limit <= 0 {
		return math.NaN()
	}
	return min(max(float64(*remaining)/float64(*limit), 0), 1)
}
