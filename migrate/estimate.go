package migrate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/store"
)

// estimate prices a supplier's usage aggregates of the last days days
// (today, UTC, included) at today's prices, on the providers that served
// them and on the target's. Rows whose model has no price today on either
// side count at their recorded cost on that side and are counted in
// Unpriced; without a price table every row is.
func (m *Manager) estimate(ctx context.Context, supplier string, from, to Target, days int, now time.Time) (CostEstimate, error) {
	last := utcDay(now)
	first := last.AddDate(0, 0, -(days - 1))
	rows, err := m.st.QueryUsage(ctx, store.UsageQuery{Supplier: supplier, From: first, To: last})
	if err != nil {
		return CostEstimate{}, fmt.Errorf("migrate: reading the usage of %s: %w", supplier, err)
	}
	e := CostEstimate{Days: days, From: first, To: last, BilledNow: from.Mode.Payer(), BilledAfter: to.Mode.Payer()}
	type key struct{ provider, model string }
	byModel := make(map[key]*ModelEstimate)
	for _, r := range rows {
		recorded := float64(r.CostMicros) / 1e6
		current, okCur := m.price(r.Provider, r.Model, now, r)
		if !okCur {
			current = recorded
		}
		targetProvider := cmp.Or(to.Provider, r.Provider)
		target, okTgt := m.price(targetProvider, r.Model, now, r)
		if !okTgt {
			target = current
		}
		k := key{r.Provider, r.Model}
		me := byModel[k]
		if me == nil {
			me = &ModelEstimate{Provider: r.Provider, Model: r.Model, Priced: true}
			byModel[k] = me
		}
		me.Requests += r.Requests
		me.PromptTokens += r.PromptTokens
		me.CompletionTokens += r.CompletionTokens
		me.CachedTokens += r.CachedTokens
		me.RecordedUSD += recorded
		me.CurrentUSD += current
		me.TargetUSD += target
		if !okCur || !okTgt {
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
		return cmp.Or(cmp.Compare(b.CurrentUSD, a.CurrentUSD), cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Model, b.Model))
	})
	e.DeltaUSD = e.TargetUSD - e.CurrentUSD
	e.PlatformDeltaUSD = billed(billing.PaidByPlatform, to.Mode, e.TargetUSD) - billed(billing.PaidByPlatform, from.Mode, e.CurrentUSD)
	e.ClientDeltaUSD = billed(billing.PaidByClient, to.Mode, e.TargetUSD) - billed(billing.PaidByClient, from.Mode, e.CurrentUSD)
	return e, nil
}

// price prices one usage row's tokens.
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
