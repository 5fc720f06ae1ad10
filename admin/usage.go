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
	Day              string `json:"day,omitempty"`
	Supplier         string `json:"supplier,omitempty"`
	Provider         string `json:"provider,omitempty"`
	Model            string `json:"model,omitempty"`
	KeySource        string `json:"key_source,omitempty"`
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

var usageGroups = map[string]bool{"day": true, "supplier": true, "provider": true, "model": true, "key_source": true}

// QueryUsage answers GET /admin/usage?supplier=&from=&to=&group_by=: the
// daily aggregates of the range (default: this month so far), grouped by
// the listed dimensions (default supplier,provider,model,key_source).
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
		groups := []string{"supplier", "provider", "model", "key_source"}
		if v := q.Get("group_by"); v != "" {
			groups = strings.Split(v, ",")
			for _, g := range groups {
				if !usageGroups[g] {
					return fail(http.StatusBadRequest, "bad_group_by", "group_by takes day, supplier, provider, model and key_source")
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
