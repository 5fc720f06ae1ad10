package compare

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/forecast"
	"github.com/wedsync/veil/store"
)

// HistoryDays is the number of days of usage, up to yesterday, a
// projection reads.
const HistoryDays = 365

// DefaultSeason describes the peak season a projection uses when Options
// gives none: forecast's March to October.
const DefaultSeason = "March to October (the default)"

// UsageSource gives the daily usage aggregates a projection starts from;
// store.Aggregates is one.
type UsageSource interface {
	QueryUsage(ctx context.Context, q store.UsageQuery) ([]store.Usage, error)
}

var _ UsageSource = (store.Aggregates)(nil)

// Projection is the supplier's cost projected a year forward, month by
// month, on its current system (now) and on the other (after a
// migration), split by who pays. Amounts are in millionths of a US
// dollar.
type Projection struct {
	// Basis says in sentences how the figures were found.
	Basis string `json:"basis"`
	// Season describes the peak season used.
	Season string `json:"season"`
	// HistoryFrom and HistoryTo are the first and last days of the
	// history (YYYY-MM-DD), and HistoryDays their number; zero without
	// any usage.
	HistoryFrom string `json:"history_from,omitempty"`
	HistoryTo   string `json:"history_to,omitempty"`
	HistoryDays int    `json:"history_days"`
	// PeakFactor is how many times an off-peak day's cost a peak day's is
	// projected at, and PeakFactorMeasured whether the history measured
	// it rather than forecast's default.
	PeakFactor         float64 `json:"peak_factor"`
	PeakFactorMeasured bool    `json:"peak_factor_measured"`
	// Months are the next 12 months, and Total their sum (with Month
	// "total").
	Months []ProjectedMonth `json:"months"`
	Total  ProjectedMonth   `json:"total"`
	// Workflows are the 12 months' totals per workflow, with the cost
	// ratio applied to each.
	Workflows []ProjectedWorkflow `json:"workflows"`
}

// ProjectedMonth is one projected month (or the total of the months).
type ProjectedMonth struct {
	// Month is YYYY-MM, and PeakDays the number of its days in the peak
	// season.
	Month    string `json:"month"`
	PeakDays int    `json:"peak_days"`
	// Requests are the projected requests.
	Requests int64 `json:"requests"`
	// NowMicros is the projected cost on the current system and
	// AfterMicros on the other; the four below split them by who pays:
	// WedSync (platform) and the supplier (client).
	NowMicros           int64 `json:"now_micros"`
	AfterMicros         int64 `json:"after_micros"`
	NowPlatformMicros   int64 `json:"now_platform_micros"`
	NowClientMicros     int64 `json:"now_client_micros"`
	AfterPlatformMicros int64 `json:"after_platform_micros"`
	AfterClientMicros   int64 `json:"after_client_micros"`
}

// ProjectedWorkflow is one workflow's projected year.
type ProjectedWorkflow struct {
	Workflow string `json:"workflow"`
	// Ratio is the cost per request on the other system over the current
	// one's, and RatioFrom where it came from: "workflow" (the
	// workflow's own pairs, at least MinPairs of them), "overall" (all
	// the comparison's pairs) or "none" (no priced pairs: the same cost
	// is assumed).
	Ratio     float64 `json:"ratio"`
	RatioFrom string  `json:"ratio_from"`
	// Requests, NowMicros and AfterMicros are the 12 months' totals.
	Requests    int64 `json:"requests"`
	NowMicros   int64 `json:"now_micros"`
	AfterMicros int64 `json:"after_micros"`
}

// cmpSeries are one workflow's daily history: requests, and cost by who
// paid.
type cmpSeries struct {
	requests, platform, client []forecast.Point
	cost                       float64
}

// season returns the projection's peak season.
func (c *Comparisons) season() (string, func(time.Time) bool) {
	if c.seasonFn != nil {
		if name, peak := c.seasonFn(); peak != nil {
			return name, peak
		}
	}
	return DefaultSeason, forecast.PeakMarchToOctober
}

// project returns the projection of the supplier of d: its daily usage
// on its current system's keys over the last HistoryDays days, projected
// 12 months forward with the peak season per workflow and payer
// (forecast.Project), and the same on the other system scaled by the
// comparison's measured cost per request ratio, the workflow's own when
// it has MinPairs pairs. Usage on the other system's keys (a
// comparison's shadow calls, a quota's switch) is left out. Nil when
// there is no usage source.
func (c *Comparisons) project(ctx context.Context, d *cmpDoc, r *Report, now time.Time) *Projection {
	if c.usage == nil {
		return nil
	}
	name, peak := c.season()
	p := &Projection{Season: name}
	to := cmpDay(now).AddDate(0, 0, -1)
	from := to.AddDate(0, 0, -(HistoryDays - 1))
	rows, err := c.usage.QueryUsage(ctx, store.UsageQuery{Supplier: d.Request.Supplier, From: from, To: to})
	if err != nil {
		c.log.Warn("comparison projection without usage history", zap.String("comparison", d.ID), zap.Error(err))
		p.Basis = "The usage history could not be read, so nothing is projected: " + err.Error()
		p.Months = cmpEmptyMonths(now, peak)
		p.Total.Month = "total"
		return p
	}
	sources := []string{string(d.Primary.First())}
	if d.Primary == billing.ModeHybrid {
		sources = []string{string(billing.ClientKey), string(billing.PlatformKey)}
	}
	series := map[string]*cmpSeries{}
	var first time.Time
	for _, u := range rows {
		if !slices.Contains(sources, u.KeySource) || u.Day.Before(from) || u.Day.After(to) {
			continue
		}
		wf := u.Workflow
		if wf == "" {
			wf = NoWorkflow
		}
		s := series[wf]
		if s == nil {
			s = &cmpSeries{}
			series[wf] = s
		}
		s.requests = append(s.requests, forecast.Point{Day: u.Day, Value: float64(u.Requests)})
		cost := float64(u.CostMicros)
		switch billing.Payer(u.Billed) {
		case billing.PaidByPlatform:
			s.platform = append(s.platform, forecast.Point{Day: u.Day, Value: cost})
		case billing.PaidByClient:
			s.client = append(s.client, forecast.Point{Day: u.Day, Value: cost})
		}
		s.cost += cost
		if first.IsZero() || u.Day.Before(first) {
			first = cmpDay(u.Day)
		}
	}
	cmpFoldSeries(series)
	opts := forecast.Options{From: first, To: to, Now: now, Peak: peak}
	if first.IsZero() {
		opts.From = to.AddDate(0, 0, 1) // an empty window: nothing to project
	}
	// The whole history's projection gives the basis and the peak factor.
	var all []forecast.Point
	for _, s := range series {
		all = append(all, s.platform...)
		all = append(all, s.client...)
	}
	whole := forecast.Project(all, opts)
	p.HistoryDays, p.PeakFactor, p.PeakFactorMeasured = whole.HistoryDays, whole.PeakFactor, whole.Measured
	if !first.IsZero() {
		p.HistoryFrom, p.HistoryTo = first.Format(time.DateOnly), to.Format(time.DateOnly)
	}
	months := make([]struct{ req, nowP, nowC, after float64 }, forecast.Months)
	names := make([]string, 0, len(series))
	for wf := range series {
		names = append(names, wf)
	}
	slices.SortFunc(names, func(a, b string) int {
		if sa, sb := series[a].cost, series[b].cost; sa != sb {
			if sa > sb {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	after := d.Request.Other.Payer()
	var ratios []string
	for _, wf := range names {
		s := series[wf]
		ratio, ratioFrom := cmpRatio(r, wf)
		req, plat, cli := forecast.Project(s.requests, opts), forecast.Project(s.platform, opts), forecast.Project(s.client, opts)
		pw := ProjectedWorkflow{Workflow: wf, Ratio: ratio, RatioFrom: ratioFrom}
		var wNow, wAfter, wReq float64
		for i := range months {
			n := plat.Months[i].Value + cli.Months[i].Value
			months[i].req += req.Months[i].Value
			months[i].nowP += plat.Months[i].Value
			months[i].nowC += cli.Months[i].Value
			months[i].after += n * ratio
			wNow, wAfter, wReq = wNow+n, wAfter+n*ratio, wReq+req.Months[i].Value
		}
		pw.Requests, pw.NowMicros, pw.AfterMicros = cmpRound(wReq), cmpRound(wNow), cmpRound(wAfter)
		p.Workflows = append(p.Workflows, pw)
		ratios = append(ratios, cmpRatioText(wf, ratio, ratioFrom, r))
	}
	p.Months = make([]ProjectedMonth, forecast.Months)
	p.Total.Month = "total"
	for i, fm := range whole.Months {
		m := ProjectedMonth{Month: fm.Label, PeakDays: fm.PeakDays, Requests: cmpRound(months[i].req),
			NowPlatformMicros: cmpRound(months[i].nowP), NowClientMicros: cmpRound(months[i].nowC),
			AfterMicros: cmpRound(months[i].after)}
		m.NowMicros = m.NowPlatformMicros + m.NowClientMicros
		if after == billing.PaidByClient {
			m.AfterClientMicros = m.AfterMicros
		} else {
			m.AfterPlatformMicros = m.AfterMicros
		}
		p.Months[i] = m
		t := &p.Total
		t.PeakDays += m.PeakDays
		t.Requests += m.Requests
		t.NowMicros += m.NowMicros
		t.AfterMicros += m.AfterMicros
		t.NowPlatformMicros += m.NowPlatformMicros
		t.NowClientMicros += m.NowClientMicros
		t.AfterPlatformMicros += m.AfterPlatformMicros
		t.AfterClientMicros += m.AfterClientMicros
	}
	if first.IsZero() {
		p.Basis = fmt.Sprintf("%s has no usage on %s keys in the last %d days, so nothing is projected.",
			d.Request.Supplier, strings.Join(sources, " or "), HistoryDays)
		return p
	}
	measured := "forecast's default, as the history has too few days of one kind"
	if whole.Measured {
		measured = "measured from the history"
	}
	p.Basis = fmt.Sprintf("Projected from %d days of %s's usage on %s keys (%s to %s): %s; peak factor %.2f, %s; "+
		"peak season %s. The other system's cost is the current one times the comparison's cost per request: %s.",
		p.HistoryDays, d.Request.Supplier, strings.Join(sources, " and "), p.HistoryFrom, p.HistoryTo, whole.Basis,
		p.PeakFactor, measured, name, strings.Join(ratios, "; "))
	return p
}

// cmpRatio returns the cost ratio a workflow's projection is scaled by,
// and where it came from.
func cmpRatio(r *Report, wf string) (float64, string) {
	for _, w := range r.Workflows {
		if w.Workflow == wf && w.Sample.Recorded >= MinPairs && w.Primary.CostMicros > 0 {
			return w.CostRatio, "workflow"
		}
	}
	if r.Cost.NowMicros > 0 {
		return r.Cost.Ratio, "overall"
	}
	return 1, "none"
}

// cmpRatioText says which ratio a workflow's projection used.
func cmpRatioText(wf string, ratio float64, from string, r *Report) string {
	switch from {
	case "workflow":
		for _, w := range r.Workflows {
			if w.Workflow == wf {
				return fmt.Sprintf("%s x%.3f from its %d pairs", wf, ratio, w.Sample.Recorded)
			}
		}
	case "overall":
		return fmt.Sprintf("%s x%.3f from all %d pairs", wf, ratio, r.Sample.Recorded)
	}
	return fmt.Sprintf("%s x1 (no priced pairs: the same cost is assumed)", wf)
}

// cmpFoldSeries keeps the MaxWorkflows workflows that cost most and
// folds the others into OtherWorkflow.
func cmpFoldSeries(series map[string]*cmpSeries) {
	n := len(series)
	if series[OtherWorkflow] != nil {
		n--
	}
	if n <= MaxWorkflows {
		return
	}
	names := make([]string, 0, len(series))
	for wf := range series {
		if wf != OtherWorkflow {
			names = append(names, wf)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if sa, sb := series[a].cost, series[b].cost; sa != sb {
			if sa > sb {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	other := series[OtherWorkflow]
	if other == nil {
		other = &cmpSeries{}
		series[OtherWorkflow] = other
	}
	for _, wf := range names[MaxWorkflows:] {
		s := series[wf]
		other.requests = append(other.requests, s.requests...)
		other.platform = append(other.platform, s.platform...)
		other.client = append(other.client, s.client...)
		other.cost += s.cost
		delete(series, wf)
	}
}

// cmpEmptyMonths returns the 12 months after now's, without figures.
func cmpEmptyMonths(now time.Time, peak func(time.Time) bool) []ProjectedMonth {
	fp := forecast.Project(nil, forecast.Options{Now: now, Peak: peak})
	out := make([]ProjectedMonth, len(fp.Months))
	for i, m := range fp.Months {
		out[i] = ProjectedMonth{Month: m.Label, PeakDays: m.PeakDays}
	}
	return out
}

// cmpRound rounds a projected figure to an integer.
func cmpRound(f float64) int64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return int64(math.Round(f))
}

// cmpDay returns midnight UTC of t's UTC day.
func cmpDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
