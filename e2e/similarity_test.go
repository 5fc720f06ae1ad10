package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/usage"
)

// TestCompareScoresSimilarity: a comparison whose similarity method calls
// a model scores each pair in the shadow's background, on a platform key:
// each scoring call is a usage record of its own, shadow, billed to the
// platform, attributed to the comparison, and the report's similarity is
// the method's (the fake answers the same prompt alike on either key).
func TestCompareScoresSimilarity(t *testing.T) {
	cases := []struct {
		method, endpoint, path, model string
	}{
		{"judge", "chat_completions", "/v1/chat/completions", "gpt-4o-mini"},
		{"embeddings", "embeddings", "/v1/embeddings", "text-embedding-3-small"},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			const n = 3
			tp := &tap{}
			s, bellaKey := withBella(tp, bellaPlatform+usagePrices+`comparisons:
  similarity:
    default: {method: `+tc.method+`, provider: openai, model: `+tc.model+`}
`)
			h := start(t, s)
			var cmp struct {
				ID string `json:"id"`
			}
			h.adminJSON(t, "POST", "/admin/comparisons", `{"supplier":"bella-photography","other":"client","requests":3,"sample":1}`, 201, &cmp)
			var rep cmpReportView
			asked := 0
			for ; asked < maxRequests; asked++ {
				h.adminJSON(t, "GET", "/admin/comparisons/"+cmp.ID, "", 200, &rep)
				if rep.Comparison.Recorded >= n {
					break
				}
				if a := ask(t.Context(), h.client(), ""); a.err != nil || a.source != "platform" {
					t.Fatalf("request %d: %q %v", asked, a.source, a.err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if rep.Comparison.Recorded != n {
				t.Fatalf("%d pairs recorded, want %d", rep.Comparison.Recorded, n)
			}
			if sim := rep.Similarity; sim.Pairs != n || sim.Mean < 0.99 || sim.Similar != 1 {
				t.Errorf("similarity %+v; the same answer on either key scores 1", sim)
			}

			var scoring []*usage.Record
			waitFor(t, func() bool {
				scoring = scoring[:0]
				for _, r := range tp.all() {
					if strings.HasSuffix(r.RequestID, "-similarity") {
						scoring = append(scoring, r)
					}
				}
				return len(scoring) >= n
			})
			for _, r := range scoring {
				if !r.Shadow || r.Billed != billing.PaidByPlatform || r.KeySource != billing.PlatformKey ||
					r.MigrationID != cmp.ID || r.Endpoint != tc.endpoint || r.Model != tc.model || r.Status != 200 ||
					r.Supplier != testSupplier || r.CostMicros == nil || *r.CostMicros <= 0 {
					t.Errorf("scoring record %+v", r)
				}
				if len(tp.byID(strings.TrimSuffix(r.RequestID, "-similarity")+"-shadow")) != 1 {
					t.Errorf("scoring record %s has no shadow call", r.RequestID)
				}
			}
			// The scoring calls, and only they, went to the method's path on
			// the platform's key; none on bella's.
			calls := 0
			for _, r := range h.up.Requests() {
				if r.Path == tc.path && strings.Contains(string(r.Body), `"model":"`+tc.model+`"`) &&
					(tc.method == "embeddings" || strings.Contains(string(r.Body), "BEGIN ANSWER A")) {
					calls++
					if r.Header.Get("Authorization") != "Bearer "+h.platformKey {
						t.Errorf("a scoring call on %q, not the platform key", r.Header.Get("Authorization"))
					}
				}
				if r.Path == tc.path && tc.path == "/v1/embeddings" && r.Header.Get("Authorization") == "Bearer "+bellaKey {
					t.Error("an embeddings call on bella's key")
				}
			}
			if calls != n {
				t.Errorf("%d scoring calls, want %d", calls, n)
			}
		})
	}
}
