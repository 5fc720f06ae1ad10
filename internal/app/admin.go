package app

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/store"
)

// KeysStatus is the document of GET /admin/keys: fingerprints, never keys.
type KeysStatus struct {
	Platform  []PlatformKeys `json:"platform"`
	Suppliers []keys.Status  `json:"suppliers"`
}

// PlatformKeys lists one provider's platform key fingerprints.
type PlatformKeys struct {
	Provider     string   `json:"provider"`
	Fingerprints []string `json:"fingerprints"`
}

func (a *App) adminEndpoints() []admin.Endpoint {
	return append(a.migrationEndpoints(), []admin.Endpoint{
		{Method: http.MethodGet, Path: "/admin/keys", Handle: a.adminKeys},
		{Method: http.MethodPost, Path: "/admin/suppliers/{}/keys/refresh", Handle: a.adminRefreshKeys},
		{Method: http.MethodGet, Path: "/admin/usage", Handle: a.adminUsage},
		{Method: http.MethodGet, Path: "/admin/explain", Handle: a.adminExplain},
		{Method: http.MethodGet, Path: "/admin/suppliers/{}", Handle: a.adminGetSupplier},
		{Method: http.MethodPut, Path: "/admin/suppliers/{}", Handle: a.adminPutSupplier},
		{Method: http.MethodDelete, Path: "/admin/suppliers/{}", Handle: a.adminDeleteSupplier},
		{Method: http.MethodPost, Path: "/admin/cache/purge", Handle: a.adminCachePurge},
	}...)
}

func (a *App) adminKeys(context.Context, admin.Call) (int, any) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := KeysStatus{Platform: []PlatformKeys{}, Suppliers: []keys.Status{}}
	for _, p := range a.providers {
		pk := PlatformKeys{Provider: p.Name(), Fingerprints: []string{}}
		if pool := p.Platform(); pool != nil {
			pk.Fingerprints = pool.Fingerprints()
		}
		st.Platform = append(st.Platform, pk)
	}
	if a.keys != nil {
		st.Suppliers = append(st.Suppliers, a.keys.Snapshot()...)
	}
	return http.StatusOK, st
}

func (a *App) adminRefreshKeys(ctx context.Context, c admin.Call) (int, any) {
	supplier := c.Param
	if a.keys == nil {
		return http.StatusNotFound, map[string]any{"error": map[string]string{"code": "no_supplier_keys",
			"message": "no supplier uses its own keys in this configuration"}}
	}
	err := a.keys.Refresh(ctx, supplier)
	out := map[string]any{"supplier": supplier, "keys": a.supplierKeys(supplier)}
	if err != nil {
		out["error"] = err.Error()
		return http.StatusBadGateway, out
	}
	return http.StatusOK, out
}

func (a *App) supplierKeys(supplier string) []keys.Status {
	out := []keys.Status{}
	for _, s := range a.keys.Snapshot() {
		if s.Supplier == supplier {
			out = append(out, s)
		}
	}
	return out
}

// UsageRow is one line of GET /admin/usage.
type UsageRow struct {
	Day              string  `json:"day,omitempty"`
	Supplier         string  `json:"supplier,omitempty"`
	Provider         string  `json:"provider,omitempty"`
	Model            string  `json:"model,omitempty"`
	KeySource        string  `json:"key_source,omitempty"`
	Requests         int64   `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

// UsageReport is the document of GET /admin/usage.
type UsageReport struct {
	From    string     `json:"from"`
	To      string     `json:"to"`
	GroupBy []string   `json:"group_by"`
	Rows    []UsageRow `json:"rows"`
	Total   UsageRow   `json:"total"`
}

var usageGroups = map[string]bool{"day": true, "supplier": true, "provider": true, "model": true, "key_source": true}

// adminUsage answers GET /admin/usage?supplier=&from=&to=&group_by=: the
// daily aggregates of the range (default: this month so far), grouped by
// the listed dimensions (default supplier,provider,model,key_source).
func (a *App) adminUsage(ctx context.Context, c admin.Call) (int, any) {
	q := c.Query
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	to := now
	var err error
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse(time.DateOnly, v); err != nil {
			return http.StatusBadRequest, adminErr("bad_from", "from must be a date such as 2026-06-01")
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse(time.DateOnly, v); err != nil {
			return http.StatusBadRequest, adminErr("bad_to", "to must be a date such as 2026-06-30")
		}
	}
	groups := []string{"supplier", "provider", "model", "key_source"}
	if v := q.Get("group_by"); v != "" {
		groups = strings.Split(v, ",")
		for _, g := range groups {
			if !usageGroups[g] {
				return http.StatusBadRequest, adminErr("bad_group_by", "group_by takes day, supplier, provider, model and key_source")
			}
		}
	}
	rows, err := a.store.QueryUsage(ctx, store.UsageQuery{Supplier: q.Get("supplier"), From: from, To: to})
	if err != nil {
		return http.StatusBadGateway, adminErr("store_unavailable", err.Error())
	}
	rep := UsageReport{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), GroupBy: groups, Rows: []UsageRow{}}
	index := map[UsageRow]int{}
	for _, u := range rows {
		var k UsageRow
		for _, g := range groups {
			switch g {
			case "day":
				k.Day = u.Day.Format(time.DateOnly)
			case "supplier":
				k.Supplier = u.Supplier
			case "provider":
				k.Provider = u.Provider
			case "model":
				k.Model = u.Model
			case "key_source":
				k.KeySource = u.KeySource
			}
		}
		i, ok := index[k]
		if !ok {
			i = len(rep.Rows)
			index[k] = i
			rep.Rows = append(rep.Rows, k)
		}
		for _, r := range []*UsageRow{&rep.Rows[i], &rep.Total} {
			r.Requests += u.Requests
			r.PromptTokens += u.PromptTokens
			r.CompletionTokens += u.CompletionTokens
			r.CachedTokens += u.CachedTokens
			r.CostUSD += float64(u.CostMicros) / 1e6
		}
	}
	return http.StatusOK, rep
}

func adminErr(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

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
}

// AttemptPlan is one planned attempt.
type AttemptPlan struct {
	Provider  string            `json:"provider"`
	Model     string            `json:"model"`
	KeySource billing.KeySource `json:"key_source"`
	Reason    string            `json:"reason"`
}

// adminExplain answers GET /admin/explain?supplier=&workflow=&model=.
func (a *App) adminExplain(ctx context.Context, c admin.Call) (int, any) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	q := c.Query
	supplier := q.Get("supplier")
	if supplier == "" {
		return http.StatusBadRequest, adminErr("supplier_required", "explain needs ?supplier=")
	}
	ex := Explanation{Supplier: supplier, Workflow: q.Get("workflow"), Model: q.Get("model"),
		Mode: a.policy.Mode([]byte(supplier)), Attempts: []AttemptPlan{}}
	plan, err := a.policy.Plan(nil, &policy.Request{Model: []byte(ex.Model), Understood: true, Supplier: []byte(supplier),
		Workflow: []byte(ex.Workflow), Now: time.Now(), Health: a.health})
	ex.Season = a.policy.Season(time.Now())
	if err != nil {
		ex.Error = err.Error()
	}
	for _, at := range plan {
		ex.Attempts = append(ex.Attempts, AttemptPlan{Provider: at.Provider.Name(), Model: string(at.Model),
			KeySource: at.Source, Reason: at.Reason})
	}
	if a.quota != nil {
		if t := a.quota.Tier([]byte(supplier), time.Now()); t != nil {
			te := &TierExplanation{Name: t.Name, OnExhausted: t.OnExhausted, Limits: map[string]int64{
				quota.LimitRequests: int64(t.RequestsPerMinute), quota.LimitTokens: int64(t.TokensPerMinute),
				quota.LimitConcurrent: int64(t.Concurrent), quota.LimitMonthTokens: int64(t.MonthlyTokens),
				quota.LimitMonthCost: int64(t.MonthlyCostUSD * 1e6)}}
			if used, err := a.quota.Used(ctx, []byte(supplier), time.Now()); err == nil {
				te.Used = used
			}
			ex.Tier = te
		}
	}
	return http.StatusOK, ex
}
