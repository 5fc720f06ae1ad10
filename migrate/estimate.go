package migrate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/forecast"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/store"
)

// ProjectionDays is how many days of usage history, before today, the
// twelve-month projection of a plan reads.
const ProjectionDays = 365

// Served returns the provider and model that the first attempt of a
// supplier's request for model in workflow would use on system to, as pol
// plans a request a migration sends to its target (Decision.Apply): the
// target's provider first when it lists or maps the model, asked for its
// model_map name of it. It reports false when pol finds no provider. It is
// what Options.Serving is meant to call with the policy in force.
func Served(pol *policy.Policy, supplier, workflow, model string, to Target) (provider, served string, ok bool) {
	if pol == nil {
		return "", "", false
	}
	req := policy.Request{Model: []byte(model), Understood: true, Supplier: []byte(supplier), Workflow: []byte(workflow)}
	Decision{Mode: to.Mode, Provider: to.Provider, ToTarget: true}.Apply(&req)
	plan, err := pol.Plan(nil, &req)
	if err != nil || len(plan) == 0 {
		return "", "", false
	}
	return plan[0].Provider.Name(), string(plan[0].Model), true
}

// priced is one usage row at today's prices on both systems.
type priced struct {
	row                   store.Usage
	targetProvider, model string // what serves it on the target
	current, target       float64
	okCurrent, okTarget   bool
}

// estimate prices a supplier's usage aggregates of the last days days
// (today, UTC, included) at today's prices, on the providers that served
// them and on the target, where Options.Serving says which provider and
// model would serve each row, and projects the daily costs of the last
// ProjectionDays days a year forward with the season. Rows whose model has
// no price today on a side count at their recorded cost on that side and
// are counted in Unpriced and named in UnpricedModels; without a price
// table every row is.
func (m *Manager) estimate(ctx context.Context, supplier string, from, to Target, days int, now time.Time) (CostEstimate, error) {
	last := utcDay(now)
	first := last.AddDate(0, 0, -(days - 1))
	oldest := last.AddDate(0, 0, -ProjectionDays)
	if first.Before(oldest) {
		oldest = first
	}
	rows, err := m.st.QueryUsage(ctx, store.UsageQuery{Supplier: supplier, From: oldest, To: last})
	if err != nil {
		return CostEstimate{}, fmt.Errorf("migrate: reading the usage of %s: %w", supplier, err)
	}
	all := make([]priced, 0, len(rows))
	for _, r := range rows {
		all = append(all, m.priceRow(supplier, r, to, now))
	}
	e := CostEstimate{Days: days, From: first, To: last, BilledNow: from.Mode.Payer(), BilledAfter: to.Mode.Payer()}
	type key struct{ provider, model, targetProvider, targetModel string }
	byModel := make(map[key]*ModelEstimate)
	unpriced := make(map[string]bool)
	for _, p := range all {
		r := p.row
		if r.Day.Before(first) {
			continue
		}
		k := key{r.Provider, r.Model, p.targetProvider, p.model}
		me := byModel[k]
		if me == nil {
			me = &ModelEstimate{Provider: r.Provider, Model: r.Model, TargetProvider: p.targetProvider, TargetModel: p.model, Priced: true}
			byModel[k] = me
		}
		me.Requests += r.Requests
		me.PromptTokens += r.PromptTokens
		me.CompletionTokens += r.CompletionTokens
		me.CachedTokens += r.CachedTokens
		me.RecordedUSD += float64(r.CostMicros) / 1e6
		me.CurrentUSD += p.current
		me.TargetUSD += p.target
		if !p.okCurrent {
			unpriced[r.Provider+"/"+r.Model] = true
		}
		if !p.okTarget {
			unpriced[p.targetProvider+"/"+p.model] = true
		}
		if !p.okCurrent || !p.okTarget {
			me.Priced = false
			e.Unpriced += r.Requests
		}
	}
	for _, me := range byModel {
		e.Requests += me.Requests
		e.PromptTokens += me.PromptTokens
		e.CompletionTokens += me.CompletionTokens
		e.CachedTokens += me.CachedTokens
		e.RecordedUSD += me.RecordedUSD
		e.CurrentUSD += me.CurrentUSD
		e.TargetUSD += me.TargetUSD
		e.Models = append(e.Models, *me)
	}
	slices.SortFunc(e.Models, func(a, b ModelEstimate) int {
		return cmp.Or(cmp.Compare(b.CurrentUSD, a.CurrentUSD), cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Model, b.Model),
			cmp.Compare(a.TargetProvider, b.TargetProvider), cmp.Compare(a.TargetModel, b.TargetModel))
	})
	for name := range unpriced {
		e.UnpricedModels = append(e.UnpricedModels, name)
	}
	slices.Sort(e.UnpricedModels)
	e.DeltaUSD = e.TargetUSD - e.CurrentUSD
	e.PlatformDeltaUSD = billed(billing.PaidByPlatform, to.Mode, e.TargetUSD) - billed(billing.PaidByPlatform, from.Mode, e.CurrentUSD)
	e.ClientDeltaUSD = billed(billing.PaidByClient, to.Mode, e.TargetUSD) - billed(billing.PaidByClient, from.Mode, e.CurrentUSD)
	e.Projection = m.project(all, from, to, now)
	return e, nil
}

// priceRow prices one usage row at today's prices on the provider that
// served it and on the target. A side without a price today counts at the
// row's recorded cost (the target at the current side's).
func (m *Manager) priceRow(supplier string, r store.Usage, to Target, now time.Time) priced {
	p := priced{row: r, targetProvider: cmp.Or(to.Provider, r.Provider), model: r.Model}
	if m.o.Serving != nil {
		if prov, model, ok := m.o.Serving(supplier, r.Workflow, r.Model, to); ok {
			p.targetProvider, p.model = prov, model
		}
	}
	p.current, p.okCurrent = m.price(r.Provider, r.Model, now, r)
	if !p.okCurrent {
		p.current = float64(r.CostMicros) / 1e6
	}
	p.target, p.okTarget = m.price(p.targetProvider, p.model, now, r)
	if !p.okTarget {
		p.target = p.current
	}
	return p
}

// project projects the daily cost of the rows before today's, on the
// current system and on the target, a year forward with the season
// (package forecast), and splits each month by who pays.
func (m *Manager) project(rows []priced, from, to Target, now time.Time) *CostProjection {
	today := utcDay(now)
	nowByDay := make(map[time.Time]float64)
	afterByDay := make(map[time.Time]float64)
	var first time.Time
	for _, p := range rows {
		d := utcDay(p.row.Day)
		if !d.Before(today) {
			continue
		}
		if first.IsZero() || d.Before(first) {
			first = d
		}
		nowByDay[d] += p.current
		afterByDay[d] += p.target
	}
	series := func(byDay map[time.Time]float64) []forecast.Point {
		out := make([]forecast.Point, 0, len(byDay))
		for d, v := range byDay {
			out = append(out, forecast.Point{Day: d, Value: v})
		}
		slices.SortFunc(out, func(a, b forecast.Point) int { return a.Day.Compare(b.Day) })
		return out
	}
	opts := forecast.Options{From: first, To: today.AddDate(0, 0, -1), Now: now}
	season := "March to October"
	if m.o.Season != nil {
		season, opts.Peak = m.o.Season()
	}
	if first.IsZero() {
		opts.From = opts.To
	}
	cur := forecast.Project(series(nowByDay), opts)
	after := forecast.Project(series(afterByDay), opts)
	cp := &CostProjection{Basis: cur.Basis, Season: season, HistoryDays: cur.HistoryDays, PeakFactor: cur.PeakFactor, Measured: cur.Measured,
		NowUSD: cur.Total, AfterUSD: after.Total, Busiest: cur.Busiest().Label}
	if first.IsZero() {
		cp.HistoryDays, cp.Basis = 0, "no usage before today"
	}
	cp.Months = make([]MonthProjection, len(cur.Months))
	for i, mo := range cur.Months {
		a := after.Months[i].Value
		cp.Months[i] = MonthProjection{Month: mo.Label, PeakDays: mo.PeakDays, NowUSD: mo.Value, AfterUSD: a,
			PlatformNowUSD: billed(billing.PaidByPlatform, from.Mode, mo.Value), ClientNowUSD: billed(billing.PaidByClient, from.Mode, mo.Value),
			PlatformAfterUSD: billed(billing.PaidByPlatform, to.Mode, a), ClientAfterUSD: billed(billing.PaidByClient, to.Mode, a)}
	}
	cp.PlatformDeltaUSD = billed(billing.PaidByPlatform, to.Mode, cp.AfterUSD) - billed(billing.PaidByPlatform, from.Mode, cp.NowUSD)
	cp.ClientDeltaUSD = billed(billing.PaidByClient, to.Mode, cp.AfterUSD) - billed(billing.PaidByClient, from.Mode, cp.NowUSD)
	return cp
}

// price prices one usage row's tokens on provider's model.
func (m *Manager) price(provider, model string, at time.Time, r store.Usage) (float64, bool) {
	if m.o.Prices == nil {
		return 0, false
	}
	micros, ok := m.o.Prices.CostMicros(provider, model, at, r.PromptTokens, r.CachedTokens, r.CompletionTokens)
	return float64(micros) / 1e6, ok
}

// billed returns usd when party pays for a system in mode, else 0.
func billed(party billing.Payer, mode billing.Mode, usd float64) float64 {
	if party == mode.Payer() {
		return usd
	}
	return 0
}

// utcDay returns midnight UTC of t's UTC day.
func utcDay(t time.Time) time.Time {
	y, mo, d := t.UTC().Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}
