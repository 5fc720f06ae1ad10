package policy

import (
	"testing"
	"time"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/provider"
)

// BenchmarkPlan measures one plan: the fixed routing of model listings,
// a season's spread by fixed weights, and the same spread with load-aware
// choice reading a health registry whose providers reported their rate
// limits, from one account each or from pools of three organisations
// (docs/benchmarks.md, "load-aware routing").
func BenchmarkPlan(b *testing.B) {
	t := &testing.T{}
	prs := []*provider.Provider{mustProvider(t, "openai", "gpt-4o-mini"), mustProvider(t, "azure", "gpt-4o-mini"),
		mustProvider(t, "openai-eu", "gpt-4o-mini")}
	reg := health.NewRegistry("openai", "azure", "openai-eu")
	now := time.Now()
	for i, pr := range prs {
		tg := reg.Target(pr.Name())
		tg.Record(200, time.Duration(100+50*i)*time.Millisecond, now)
		tg.ReportRateLimits(health.RateLimits{LimitRequests: 10000, RemainingRequests: int64(9000 - 3000*i), LimitTokens: 30000000,
			RemainingTokens: 20000000, ResetRequests: 6 * time.Second, ResetTokens: time.Second}, now)
	}
	// The same providers, each with a pool of platform keys in three
	// organisations, each organisation with its own limits.
	pools := health.NewRegistry("openai", "azure", "openai-eu")
	for i, pr := range prs {
		tg := pools.Target(pr.Name())
		tg.Record(200, time.Duration(100+50*i)*time.Millisecond, now)
		for j, org := range []string{"org-a", "org-b", "org-c"} {
			tg.ReportAccountRateLimits(health.OrgAccount([]byte(org)), health.RateLimits{LimitRequests: int64(10000 * (j + 1)),
				RemainingRequests: int64(9000 - 3000*i), LimitTokens: 30000000, RemainingTokens: 20000000,
				ResetRequests: 6 * time.Second, ResetTokens: time.Second}, now)
		}
	}
	weights := map[string]int{"openai": 2, "azure": 1, "openai-eu": 1}
	cases := []struct {
		name string
		o    Options
		req  Request
	}{
		{"fixed", Options{}, Request{}},
		{"spread", Options{Seasons: allYear(weights), DefaultTier: "starter"}, Request{}},
		{"load-aware", Options{Seasons: allYear(weights), DefaultTier: "starter", LoadAware: config.LoadAware{Enabled: true}},
			Request{Load: reg}},
		{"load-aware pools of three organisations", Options{Seasons: allYear(weights), DefaultTier: "starter",
			LoadAware: config.LoadAware{Enabled: true}}, Request{Load: pools}},
		{"load-aware strict region", Options{Seasons: allYear(weights), DefaultTier: "starter", LoadAware: config.LoadAware{Enabled: true},
			Regions: map[string]Region{"rose-venue": {Name: "eu", Strict: true, Providers: map[string]string{"openai": "openai-eu", "azure": "openai-eu"}}}},
			Request{Load: reg}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			o := tc.o
			o.Providers = prs
			p, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]Attempt, 0, 8)
			req := tc.req
			req.Model, req.Understood, req.Supplier, req.Now = []byte("gpt-4o-mini"), true, []byte("rose-venue"), now
			b.ReportAllocs()
			for b.Loop() {
				req.Spread++
				if _, err := p.Plan(buf[:0], &req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
