package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wedsync/veil/cache"
)

// cacheCollector exports the response cache's counters at scrape time:
// veil_cache_hits_total, veil_cache_misses_total, veil_cache_sets_total,
// veil_cache_sets_dropped_total, veil_cache_sets_rejected_total,
// veil_cache_evictions_total, veil_cache_entries and veil_cache_bytes.
// They are zero while there is no cache.
type cacheCollector struct {
	m                                                       *Metrics
	hits, misses, sets, dropped, rejected, evicted, entries *prometheus.Desc
	bytes                                                   *prometheus.Desc
}

var _ prometheus.Collector = (*cacheCollector)(nil)

func (m *Metrics) newCacheCollector() *cacheCollector {
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &cacheCollector{
		m:        m,
		hits:     desc("veil_cache_hits_total", "Requests answered from the response cache."),
		misses:   desc("veil_cache_misses_total", "Cacheable requests not found in the response cache."),
		sets:     desc("veil_cache_sets_total", "Answers handed to the response cache."),
		dropped:  desc("veil_cache_sets_dropped_total", "Answers the response cache dropped at once (too large, or contention)."),
		rejected: desc("veil_cache_sets_rejected_total", "Answers the response cache's admission policy declined."),
		evicted:  desc("veil_cache_evictions_total", "Answers removed from the response cache to make room or at the end of their TTL."),
		entries:  desc("veil_cache_entries", "Answers held in the response cache."),
		bytes:    desc("veil_cache_bytes", "Memory the cached answers take, as the cache counts it."),
	}
}

// WatchCache exports the response cache whose counters stats reads. Until
// it is called, as when the config turns the cache off, the cache's
// series are exported at zero.
func (m *Metrics) WatchCache(stats func() cache.Stats) { m.cacheStats.Store(&stats) }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range [...]*prometheus.Desc{c.hits, c.misses, c.sets, c.dropped, c.rejected, c.evicted, c.entries, c.bytes} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	var s cache.Stats
	if stats := c.m.cacheStats.Load(); stats != nil {
		s = (*stats)()
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.hits, s.Hits)
	counter(c.misses, s.Misses)
	counter(c.sets, s.Sets)
	counter(c.dropped, s.Dropped)
	counter(c.rejected, s.Rejected)
	counter(c.evicted, s.Evictions)
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.CostBytes))
}
