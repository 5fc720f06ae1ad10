package admin

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"

	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/quota"
)

// Explanation is the document of GET /admin/explain: how veil would serve
// a request, and why, for support staff.
type Explanation struct {
	Supplier string           `json:"supplier"`
	Workflow string           `json:"workflow,omitempty"`
	Model    string           `json:"requested_model,omitempty"`
	Mode     billing.Mode     `json:"mode"`
	Season   string           `json:"season,omitempty"`
	Tier     *TierExplanation `json:"tier,omitempty"`
	Attempts []AttemptPlan    `json:"attempts"`
	Error    string           `json:"error,omitempty"`
}

// TierExplanation shows a supplier's tier and its current use.
type TierExplanation struct {
	Name        string           `json:"name"`
	OnExhausted string           `json:"on_exhausted"`
	Limits      map[string]int64 `json:"limits"`
	Used        map[string]int64 `json:"used,omitempty"`
	// Fallback is the tier that holds the supplier's calls on platform
	// keys while its own key is out (fallback_tier), with its own use.
	Fallback *TierExplanation `json:"fallback,omitempty"`
}

// AttemptPlan is one planned attempt.
type AttemptPlan struct {
	Provider  string            `json:"provider"`
	Model     string            `json:"model"`
	KeySource billing.KeySource `json:"key_source"`
	Reason    string            `json:"reason"`
}

// Explain answers GET /admin/explain?supplier=&workflow=&model= with the
// plan of the runtime in force; h, when set, leaves out providers whose
// breakers are open, as the proxy does.
func Explain(rt RuntimeLoader, h policy.Availability) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		r := rt.Load()
		q := c.Query
		supplier := q.Get("supplier")
		if supplier == "" {
			return fail(http.StatusBadRequest, "supplier_required", "explain needs ?supplier=")
		}
		now := time.Now()
		ex := Explanation{Supplier: supplier, Workflow: q.Get("workflow"), Model: q.Get("model"),
			Mode: r.Policy.Mode([]byte(supplier)), Attempts: []AttemptPlan{}}
		plan, err := r.Policy.Plan(nil, &policy.Request{Model: []byte(ex.Model), Understood: true, Supplier: []byte(supplier),
			Workflow: []byte(ex.Workflow), Now: now, Health: h})
		ex.Season = r.Policy.Season(now)
		if err != nil {
			ex.Error = err.Error()
		}
		for _, at := range plan {
			ex.Attempts = append(ex.Attempts, AttemptPlan{Provider: at.Provider.Name(), Model: string(at.Model),
				KeySource: at.Source, Reason: at.Reason})
		}
		if r.Quota != nil {
			if t := r.Quota.Tier([]byte(supplier), now); t != nil {
				te := &TierExplanation{Name: t.Name, OnExhausted: t.OnExhausted, Limits: tierLimits(t)}
				if used, err := r.Quota.Used(ctx, []byte(supplier), now); err == nil {
					te.Used = used
				}
				if ft, used, err := r.Quota.UsedFallback(ctx, []byte(supplier), now); ft != nil && err == nil {
					te.Fallback = &TierExplanation{Name: ft.Name, OnExhausted: ft.OnExhausted, Limits: tierLimits(ft), Used: used}
				}
				ex.Tier = te
			}
		}
		return http.StatusOK, ex
	}
}

// tierLimits lists a tier's limits by name.
func tierLimits(t *config.Tier) map[string]int64 {
	return map[string]int64{
		quota.LimitRequests: int64(t.RequestsPerMinute), quota.LimitTokens: int64(t.TokensPerMinute),
		quota.LimitConcurrent: int64(t.Concurrent), quota.LimitMonthTokens: int64(t.MonthlyTokens),
		quota.LimitMonthCost: int64(math.Round(t.MonthlyCostUSD * 1e6))}
}
