package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// seasonCollector exports veil_season_active at scrape time: 1 for the
// season in force, 0 for every other season the config names.
type seasonCollector struct {
	m      *Metrics
	active *prometheus.Desc
}

var _ prometheus.Collector = (*seasonCollector)(nil)

func (m *Metrics) newSeasonCollector() *seasonCollector {
	return &seasonCollector{m: m, active: prometheus.NewDesc("veil_season_active",
		"1 for the season in force (the first of the config's seasons whose days cover today in its time zone, "+
			"as routing and tiers decide it), 0 for the config's other seasons.", []string{"season"}, nil)}
}

func (c *seasonCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.active }

func (c *seasonCollector) Collect(ch chan<- prometheus.Metric) {
	seasons := c.m.seasons.Load()
	if seasons == nil {
		return
	}
	now, active, decided := c.m.now(), "", false
	for _, s := range *seasons {
		if s.Active(now) {
			active, decided = s.Name, true
			break
		}
	}
	// Two windows may share a name (a peak in spring and one in autumn):
	// one series per name.
	seen := make(map[string]bool, len(*seasons))
	for _, s := range *seasons {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		v := 0.0
		if decided && s.Name == active {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, v, s.Name)
	}
}
