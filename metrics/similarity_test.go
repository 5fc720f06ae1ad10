package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestWatchSimilarity(t *testing.T) {
	m := New()
	scores := []SimilarityCount{{Method: "lexical", N: 4}, {Method: "judge", N: 7}}
	fallbacks := []SimilarityCount{{Method: "judge", Reason: "timeout", N: 2}, {Method: "embeddings", Reason: "invalid"}}
	m.WatchSimilarity(func() []SimilarityCount { return scores }, func() []SimilarityCount { return fallbacks })
	want := `# HELP veil_similarity_fallbacks_total Shadow comparison answer pairs scored lexically because their similarity method failed, by method and reason (timeout, error, invalid).
# TYPE veil_similarity_fallbacks_total counter
veil_similarity_fallbacks_total{method="embeddings",reason="invalid"} 0
veil_similarity_fallbacks_total{method="judge",reason="timeout"} 2
# HELP veil_similarity_scores_total Shadow comparison answer pairs scored by their workflow's similarity method, by method.
# TYPE veil_similarity_scores_total counter
veil_similarity_scores_total{method="judge"} 7
veil_similarity_scores_total{method="lexical"} 4
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"veil_similarity_scores_total", "veil_similarity_fallbacks_total"); err != nil {
		t.Error(err)
	}
}
