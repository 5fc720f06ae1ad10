package proxy_test

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/proxy"
)

// TestLoadAwareAllocs: with load-aware routing on, a season spreading the
// call over two providers by their headroom over the two accounts of each
// pool (two keys, the answers naming no organisation) and every answer's
// rate limits recorded, a request stays within the pass-through
// allocation budget.
// The file's name runs it beside TestPassThroughAllocs, before the cache
// tests tune fasthttp's shared buffer pools to far larger bodies.
func TestLoadAwareAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are only meaningful without -short and -race")
	}
	up := nullUpstream(t)
	var prs []*provider.Provider
	for _, name := range []string{"openai", "azure"} {
		p, err := provider.New(config.Provider{Name: name, Type: "openai", BaseURL: "http://" + up + "/v1", MaxConns: 64},
			[]keys.Secret{keys.NewSecret("sk-bench-" + name), keys.NewSecret("sk-bench-2-" + name)}, provider.Options{MaxResponseBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		prs = append(prs, p)
	}
	pol, err := policy.New(policy.Options{Providers: prs, DefaultTier: "starter", LoadAware: config.LoadAware{Enabled: true},
		Seasons: []config.Season{{Name: "peak", From: "01-01", To: "12-31",
			Spread: config.Spread{Tiers: []string{"starter"}, Weights: map[string]int{"openai": 1, "azure": 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	const token = "veil-bench-caller"
	authn, err := auth.New(auth.Options{Callers: []auth.CallerSpec{{Name: "bench", TokenHash: auth.HashToken(token), Suppliers: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	lim := config.Default().Limits
	reg := health.NewRegistry("openai", "azure")
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(discard{}), zap.InfoLevel))
	s, err := proxy.New(proxy.Options{Limits: lim, Auth: authn, Policy: pol, Metrics: metrics.New(), Log: log, Health: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := newCtx(token)
	for range 4 { // warm pools and both providers' metric series
		serveOnce(t, s, ctx)
	}
	allocs := testing.AllocsPerRun(200, func() { serveOnce(t, s, ctx) })
	t.Logf("%.1f allocations per load-aware request", allocs)
	if budget := maxAllocsPerRequest[false]; allocs > budget {
		t.Errorf("%.1f allocations per request, budget %v", allocs, budget)
	}
	for _, snap := range reg.Snapshot() {
		if snap.Headroom == nil || snap.Successes == 0 || snap.Pool == nil || snap.Pool.Accounts != 2 {
			t.Errorf("%s: the answers' rate limits were not recorded for both keys (%+v)", snap.Target, snap)
		}
	}
}
