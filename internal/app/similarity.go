package app

import (
	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/similarity"
)

// watchSimilarity makes the counters of the comparisons' similarity
// scoring, shared by every config generation, and exports them.
func (a *App) watchSimilarity() {
	a.similarity = &similarity.Counters{}
	convert := func(cs []similarity.Count) []metrics.SimilarityCount {
		out := make([]metrics.SimilarityCount, len(cs))
		for i, c := range cs {
			out[i] = metrics.SimilarityCount{Method: c.Method, Reason: c.Reason, N: c.N}
		}
		return out
	}
	a.metrics.WatchSimilarity(func() []metrics.SimilarityCount { return convert(a.similarity.Scores()) },
		func() []metrics.SimilarityCount { return convert(a.similarity.Fallbacks()) })
}

// Scorer builds, without starting veil, the similarity scorer cfg's
// comparisons.similarity configures, with the platform keys of the
// providers it names resolved through the configured sources (Vault
// included), for veil compare calibrate. Call done when finished with it.
func Scorer(cfg *config.Config, o Options) (set *similarity.Set, done func(), err error) {
	a := &App{cfg: cfg, log: o.Log, audit: o.Audit, closeLog: func() {}}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.audit == nil {
		a.audit = zap.NewNop()
	}
	if err := a.buildSecrets(o.Secrets); err != nil {
		return nil, nil, err
	}
	closeVault := func() {
		if a.vault != nil {
			a.vault.Close()
		}
	}
	set, providers, err := generation.BuildScorer(cfg, generation.Deps{Secrets: a.secrets, Vault: a.vault, Log: a.log, Audit: a.audit})
	if err != nil {
		closeVault()
		return nil, nil, err
	}
	return set, func() {
		for _, p := range providers {
			p.Close()
		}
		closeVault()
	}, nil
}
