package app

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/wedsync/veil/keys"
)

// TestSimilarityFollowsReloads: a reload changes the similarity method the
// proxy's runtime scores with, and the metrics of similarity scoring are
// exported from the start, one counter set across generations.
func TestSimilarityFollowsReloads(t *testing.T) {
	env := testEnv{"K": "sk-test", "T": "veil-test"}
	a := env.start(t, reloadYAML)
	if got := a.rt.Load().Similarity.Method("planning"); got != "lexical" {
		t.Fatalf("planning scored by %q", got)
	}
	if err := a.Reload(env.parse(t, reloadYAML+`comparisons:
  similarity:
    workflows:
      planning: {method: judge, provider: openai, model: gpt-4o-mini, threshold: 0.75}
`)); err != nil {
		t.Fatal(err)
	}
	rt := a.rt.Load()
	if got := rt.Similarity.Method("planning"); got != "judge gpt-4o-mini" {
		t.Errorf("after the reload planning is scored by %q", got)
	}
	if rt.Similarity.Counters() != a.similarity {
		t.Error("the new generation counts on its own")
	}
	n, err := testutil.GatherAndCount(a.metrics.Registry, "veil_similarity_scores_total", "veil_similarity_fallbacks_total")
	if err != nil || n != 3+6 {
		t.Errorf("%d similarity series, want 9: %v", n, err)
	}
}

// TestScorer builds the configured scorer outside a running veil.
func TestScorer(t *testing.T) {
	env := testEnv{"K": "sk-test", "T": "veil-test"}
	cfg := env.parse(t, strings.Replace(reloadYAML, "env://T", "env://UNSET", 1)+`comparisons:
  similarity:
    default: {method: embeddings, provider: openai, model: text-embedding-3-small}
`)
	set, done, err := Scorer(cfg, Options{Log: zap.NewNop(), Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: env.lookup}}})
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if got := set.Method("venue"); got != "embeddings text-embedding-3-small" {
		t.Errorf("venue scored by %q", got)
	}
}
