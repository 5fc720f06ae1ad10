package health

import (
	"testing"
	"time"
)

// BenchmarkLoad measures reading a provider's load on the request path:
// one account, a pool of three organisations, and the same pool with
// every replica's observations of it shared.
func BenchmarkLoad(b *testing.B) {
	now := time.Now()
	l := RateLimits{LimitRequests: 10000, RemainingRequests: 9000, LimitTokens: 30000000, RemainingTokens: 20000000,
		ResetRequests: 6 * time.Second, ResetTokens: time.Second}
	orgs := []string{"org-a", "org-b", "org-c"}
	for _, tc := range []struct {
		name     string
		accounts int
		shared   bool
	}{{"one account", 1, false}, {"three organisations", 3, false}, {"three organisations shared", 3, true}} {
		b.Run(tc.name, func(b *testing.B) {
			r := NewRegistry("openai")
			tg := r.Target("openai")
			var view []observation
			for _, org := range orgs[:tc.accounts] {
				tg.ReportAccountRateLimits(OrgAccount([]byte(org)), l, now)
				o := observe(l, now.Add(-time.Millisecond))
				o.acct = OrgAccount([]byte(org))
				view = append(view, o)
			}
			if tc.shared {
				r.shared.Store(&sharedView{byProvider: map[string]sharedEntry{"openai": {accounts: view}}})
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _, _ = r.Load("openai", now)
			}
		})
	}
}
