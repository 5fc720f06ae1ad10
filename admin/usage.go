package admin

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/wedsync/veil/store"
)

// UsageRow is one line of GET /admin/usage.
type UsageRow struct {
	Day       string `json:"day,omitempty"`
	Supplier  string `json:"supplier,omitempty"`
	Provider  string `json:"provider,omitempty"`
	Model     string `json:"model,omitempty"`
	KeySource string `json:"key_source,omitempty"`
	// Billed is who pays: platform, client, or none when no provider was
	// asked (cache hits, veil's own refusals). It differs from KeySource
	// for a comparison's shadow calls on a supplier's key, which the
	// platform pays for.
	Billed string `json:"billed,omitempty"`
	// Workflow is the requests' workflow (X-Workflow); absent when they
	// named none.
	Workflow         string `json:"workflow,omitempty"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	CachedTokens     int64  `json:"cached_tokens"`
	// CostMicros is the cost in micro-dollars, summed exactly; CostUSD is
	// the same in dollars, for display.
	CostMicros int64   `json:"cost_micros"`
	CostUSD    float64 `json:"cost_usd"`
}

// UsageReport is the document of GET /admin/usage.
type UsageReport struct {
	From    string     `json:"from"`
	To      string     `json:"to"`
	GroupBy []string   `json:"group_by"`
	Rows    []UsageRow `json:"rows"`
	Total   UsageRow   `json:"total"`
}

// UsageQuerier reads the daily usage aggregates; store.Store is one.
type UsageQuerier interface {
	QueryUsage(ctx context.Context, q store.UsageQuery) ([]store.Usage, error)
}

// usageGroups are the dimensions group_by takes, each with what it copies
// from an aggregate into a row's key.
var usageGroups = map[string]func(k *UsageRow, u *store.Usage){
	"day":        func(k *UsageRow, u *store.Usage) { k.Day = u.Day.Format(time.DateOnly) },
	"supplier":   func(k *UsageRow, u *store.Usage) { k.Supplier = u.Supplier },
	"provider":   func(k *UsageRow, u *store.Usage) { k.Provider = u.Provider },
	"model":      func(k *UsageRow, u *store.Usage) { k.Model = u.Model },
	"key_source": func(k *UsageRow, u *store.Usage) { k.KeySource = u.KeySource },
	"billed":     func(k *UsageRow, u *store.Usage) { k.Billed = u.Billed },
	"workflow":   func(k *UsageRow, u *store.Usage) { k.Workflow = u.Workflow },
}

// defaultUsageGroups is the grouping of GET /admin/usage without group_by.
var defaultUsageGroups = []string{"supplier", "provider", "model", "key_source", "billed"}

// QueryUsage answers GET /admin/usage?supplier=&from=&to=&group_by=: the
// daily aggregates of the range (default: this month so far), grouped by
// the listed dimensions: day, supplier, provider, model, key_source,
// billed and workflow (default supplier,provider,model,key_source,billed).
func QueryUsage(u UsageQuerier) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		q := c.Query
		now := time.Now().UTC()
		from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		to := now
		var err error
		if v := q.Get("from"); v != "" {
			if from, err = time.Parse(time.DateOnly, v); err != nil {
				return fail(http.StatusBadRequest, "bad_from", "from must be a date such as 2026-06-01")
			}
		}
		if v := q.Get("to"); v != "" {
			if to, err = time.Parse(time.DateOnly, v); err != nil {
				return fail(http.StatusBadRequest, "bad_to", "to must be a date such as 2026-06-30")
			}
		}
		groups := defaultUsageGroups
		if v := q.Get("group_by"); v != "" {
			groups = strings.Split(v, ",")
			for _, g := range groups {
				if usageGroups[g] == nil {
					return fail(http.StatusBadRequest, "bad_group_by",
						"group_by takes day, supplier, provider, model, key_source, billed and workflow")
				}
			}
		}
		rows, err := u.QueryUsage(ctx, store.UsageQuery{Supplier: q.Get("supplier"), From: from, To: to})
		if err != nil {
			return fail(http.StatusBadGateway, "store_unavailable", err.Error())
		}
		rep := UsageReport{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), GroupBy: groups, Rows: []UsageRow{}}
		index := map[UsageRow]int{}
		for _, u := range rows {
			var k UsageRow
			for _, g := range groups {
				usageGroups[g](&k, &u)
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
				r.CostMicros += u.CostMicros
			}
		}
		for i := range rep.Rows {
			rep.Rows[i].CostUSD = float64(rep.Rows[i].CostMicros) / 1e6
		}
		rep.Total.CostUSD = float64(rep.Total.CostMicros) / 1e6
		return http.StatusOK, rep
	}
}
