package admin

import (
	"context"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/quota"
)

// Explanation is the document of GET /admin/explain: how veil would serve
// a request, and why, for support staff. The mode, its source and the
// attempts are worked out by the code that routes requests: the
// migrations' routing table (migrate.Decision.Apply) and the policy.
type Explanation struct {
	Supplier string `json:"supplier"`
	Workflow string `json:"workflow,omitempty"`
	Model    string `json:"requested_model,omitempty"`
	User     string `json:"user,omitempty"`
	// EffectiveMode is the mode the requests are served with, and why.
	EffectiveMode
	Season   string           `json:"season,omitempty"`
	Tier     *TierExplanation `json:"tier,omitempty"`
	Attempts []AttemptPlan    `json:"attempts"`
	// OtherPath, while a migration ramps, is the other side of its split:
	// the system the rest of the requests go to, and their attempts.
	OtherPath *PathPlan `json:"other_path,omitempty"`
	Error     string    `json:"error,omitempty"`
	// ErrorCode is the code the proxy answers the plan's error with, such
	// as no_provider_in_region.
	ErrorCode string `json:"error_code,omitempty"`
	// Region is the supplier's region; RegionStrict says that its calls
	// must stay on the region's providers.
	Region       string `json:"region,omitempty"`
	RegionStrict bool   `json:"region_strict,omitempty"`
	// LoadAware says whether load-aware routing is on; Choice explains the
	// weighted choice of the first attempt (a season's spread, a route's
	// weights), when the plan makes one (ADR 0028).
	LoadAware bool            `json:"load_aware"`
	Choice    []policy.Choice `json:"choice,omitempty"`
}

// PathPlan is one side of a migration's split and its attempts.
type PathPlan struct {
	// Path is "target" or "source", Mode its system's mode and Share the
	// fraction of requests without a user that take it.
	Path     string        `json:"path"`
	Mode     billing.Mode  `json:"mode"`
	Share    float64       `json:"share"`
	Attempts []AttemptPlan `json:"attempts"`
	Error    string        `json:"error,omitempty"`
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

// Explain answers GET /admin/explain?supplier=&workflow=&model=&user=
// with the plan of the runtime in force, as the proxy makes it: the
// supplier's migration, if one routes it (m, the routing table the proxy
// reads), sets the key sources, and the policy plans the attempts; h,
// when set, leaves out providers whose breakers are open, as the proxy
// does. While a migration ramps, user (a request's "user" field) decides
// the side as it does for requests; without it the target's side is
// shown, and the other in other_path.
func Explain(rt RuntimeLoader, h policy.Availability, m MigrationRouter) HandlerFunc {
	in := ExplainInputs{Health: h}
	if l, ok := h.(policy.Load); ok {
		in.Load = l
	}
	return ExplainWith(rt, in, m)
}

// ExplainInputs are what a plan reads besides the runtime, as the proxy
// gives them.
type ExplainInputs struct {
	// Health, when set, leaves out providers whose breakers are open.
	Health policy.Availability
	// Load weighs choices with load-aware routing on.
	Load policy.Load
	// Keys tells where suppliers' own keys are held.
	Keys policy.KeyPresence
}

// ExplainWith is Explain with every input of the plan: with Load, the
// load-aware choice of the first attempt and its weights (Choice); with
// Keys, a supplier's own key only where it is held.
func ExplainWith(rt RuntimeLoader, in ExplainInputs, m MigrationRouter) HandlerFunc {
	h := in.Health
	return func(ctx context.Context, c Call) (int, any) {
		r := rt.Load()
		q := c.Query
		supplier := q.Get("supplier")
		if supplier == "" {
			return fail(http.StatusBadRequest, "supplier_required", "explain needs ?supplier=")
		}
		now := time.Now()
		ex := Explanation{Supplier: supplier, Workflow: q.Get("workflow"), Model: q.Get("model"), User: q.Get("user")}
		em, d, routing := effectiveMode(r, m, supplier, []byte(ex.User))
		ex.EffectiveMode = em
		plan := func(d *migrate.Decision) ([]AttemptPlan, string) {
			req := policy.Request{Model: []byte(ex.Model), Understood: true, Supplier: []byte(supplier),
				Workflow: []byte(ex.Workflow), Now: now, Health: h, Load: in.Load, Keys: in.Keys}
			if d != nil {
				d.Apply(&req)
			}
			attempts, err := r.Policy.Plan(nil, &req)
			if ex.Choice == nil {
				ex.Choice = r.Policy.Choices(&req) // the requests' own side comes first
			}
			if errors.Is(err, policy.ErrNoProviderInRegion) && ex.ErrorCode == "" {
				ex.ErrorCode = "no_provider_in_region"
			}
			out := make([]AttemptPlan, 0, len(attempts))
			for _, at := range attempts {
				out = append(out, AttemptPlan{Provider: at.Provider.Name(), Model: string(at.Model), KeySource: at.Source, Reason: at.Reason})
			}
			if err != nil {
				return out, err.Error()
			}
			return out, ""
		}
		ex.Attempts, ex.Error = plan(d)
		if routing != nil && routing.Share < 1 {
			other, path, share := routing.Source, "source", 1-routing.Share
			if !d.ToTarget {
				other, path, share = routing.Target, "target", routing.Share
			}
			op := &PathPlan{Path: path, Mode: other.Mode, Share: share}
			op.Attempts, op.Error = plan(&other)
			ex.OtherPath = op
		}
		ex.Season = r.Policy.Season(now)
		ex.Region, ex.RegionStrict = r.Policy.Region([]byte(supplier))
		if r.Config != nil {
			ex.LoadAware = r.Config.Routing.LoadAware.Enabled
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
