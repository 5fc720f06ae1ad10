package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// SimilarityCount is one counter of the answer-similarity scorer
// (similarity.Counters): a method kind and, for a fallback, its reason.
type SimilarityCount struct {
	Method, Reason string
	N              uint64
}

// similarityCollector exports the similarity scorer's counters at scrape
// time.
type similarityCollector struct {
	scores, fallbacks func() []SimilarityCount
	scored, fellBack  *prometheus.Desc
}

// WatchSimilarity exports the counters of the shadow comparisons'
// similarity scoring: veil_similarity_scores_total{method}, the pairs
// scored by their workflow's method (lexical, embeddings, judge), and
// veil_similarity_fallbacks_total{method,reason}, the pairs scored
// lexically because that method failed (timeout, error, invalid).
func (m *Metrics) WatchSimilarity(scores, fallbacks func() []SimilarityCount) {
	m.Registry.MustRegister(&similarityCollector{
		scores:    scores,
		fallbacks: fallbacks,
		scored: prometheus.NewDesc("veil_similarity_scores_total",
			"Shadow comparison answer pairs scored by their workflow's similarity method, by method.", []string{"method"}, nil),
		fellBack: prometheus.NewDesc("veil_similarity_fallbacks_total",
			"Shadow comparison answer pairs scored lexically because their similarity method failed, by method and reason "+
				"(timeout, error, invalid).", []string{"method", "reason"}, nil),
	})
}

func (c *similarityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.scored
	ch <- c.fellBack
}

func (c *similarityCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.scores() {
		ch <- prometheus.MustNewConstMetric(c.scored, prometheus.CounterValue, float64(s.N), s.Method)
	}
	for _, f := range c.fallbacks() {
		ch <- prometheus.MustNewConstMetric(c.fellBack, prometheus.CounterValue, float64(f.N), f.Method, f.Reason)
	}
}
