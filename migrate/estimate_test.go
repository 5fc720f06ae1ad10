package migrate

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/store"
	"github.com/wedsync/veil/usage"
)

// openaiAnthropic is a policy with OpenAI (WedSync's key, any model) and
// Anthropic, which serves gpt-4o and o1-preview by its own names.
func openaiAnthropic(t *testing.T) *policy.Policy {
	t.Helper()
	openai, err := provider.New(config.Provider{Name: "openai", Type: config.ProviderTypeOpenAI, BaseURL: "http://127.0.0.1:1/v1"},
		[]keys.Secret{keys.NewSecret("sk-platform")}, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	anthropic, err := provider.New(config.Provider{Name: "anthropic", Type: config.ProviderTypeAnthropic, BaseURL: "http://127.0.0.1:1/v1",
		ModelMap: map[string]string{"gpt-4o": "claude-sonnet-4", "o1-preview": "claude-opus-4"}}, nil, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(policy.Options{Providers: []*provider.Provider{openai, anthropic}, DefaultProvider: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// addUsage stores usage rows.
func addUsage(t *testing.T, st Store, rows ...store.Usage) {
	t.Helper()
	for _, u := range rows {
		if err := st.AddUsage(t.Context(), fmt.Sprintf("%s.%s.%s.%s", u.Day.Format(time.DateOnly), u.Supplier, u.Provider, u.Model), u); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPlanModelMap: a plan from OpenAI to the supplier's own key on
// Anthropic prices each model as routing would serve it there: gpt-4o as
// Anthropic's claude-sonnet-4 at its price, a model Anthropic does not
// serve on OpenAI still, and names what has no price.
func TestPlanModelMap(t *testing.T) {
	st := openStore(t, "embedded")
	day := func(daysAgo int) time.Time { return t0.AddDate(0, 0, -daysAgo) }
	addUsage(t, st,
		store.Usage{Day: day(1), Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o", KeySource: "platform",
			Requests: 196, PromptTokens: 1_000_000, CompletionTokens: 100_000, CostMicros: 3_500_000},
		store.Usage{Day: day(2), Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Requests: 40, PromptTokens: 1_000_000, CompletionTokens: 1_000_000, CostMicros: 750_000},
		store.Usage{Day: day(2), Supplier: "capture-moments", Provider: "openai", Model: "o1-preview", KeySource: "platform",
			Requests: 3, PromptTokens: 10_000, CompletionTokens: 10_000, CostMicros: 750_000},
	)
	year := t0.AddDate(-1, 0, 0)
	prices, err := usage.NewPriceTable([]usage.Price{
		{Provider: "openai", Model: "gpt-4o", InputPerMTok: 2.50, OutputPerMTok: 10.00, Effective: year},
		{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.15, OutputPerMTok: 0.60, Effective: year},
		{Provider: "openai", Model: "o1-preview", InputPerMTok: 15, OutputPerMTok: 60, Effective: year},
		{Provider: "anthropic", Model: "claude-sonnet-4", InputPerMTok: 3.00, OutputPerMTok: 15.00, Effective: year},
	})
	if err != nil {
		t.Fatal(err)
	}
	pol := openaiAnthropic(t)
	r := newRig(t, st, "pod-a", nil, func(o *Options) {
		o.Prices = prices
		o.Serving = func(supplier, workflow, model string, to Target) (string, string, bool) {
			return Served(pol, supplier, workflow, model, to)
		}
	})
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: Target{Mode: billing.ModeClient, Provider: "anthropic"}})
	if err != nil {
		t.Fatal(err)
	}
	e := mg.Estimate
	type model struct {
		provider, model, targetProvider, targetModel string
		current, target                              float64
		priced                                       bool
	}
	var got []model
	for _, me := range e.Models {
		got = append(got, model{me.Provider, me.Model, me.TargetProvider, me.TargetModel, me.CurrentUSD, me.TargetUSD, me.Priced})
	}
	// gpt-4o: 1M*2.50 + 100k*10 = $3.50 now, 1M*3 + 100k*15 = $4.50 on
	// claude-sonnet-4. gpt-4o-mini: $0.75 either way, on OpenAI still.
	// o1-preview: $0.75 now; claude-opus-4 has no price, so $0.75 after.
	want := []model{
		{"openai", "gpt-4o", "anthropic", "claude-sonnet-4", 3.50, 4.50, true},
		{"openai", "gpt-4o-mini", "openai", "gpt-4o-mini", 0.75, 0.75, true},
		{"openai", "o1-preview", "anthropic", "claude-opus-4", 0.75, 0.75, false},
	}
	if len(got) != len(want) {
		t.Fatalf("models %+v\nwant %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.provider != w.provider || g.model != w.model || g.targetProvider != w.targetProvider || g.targetModel != w.targetModel ||
			!near(g.current, w.current) || !near(g.target, w.target) || g.priced != w.priced {
			t.Errorf("model %d: %+v, want %+v", i, g, w)
		}
	}
	if e.Unpriced != 3 || !slices.Equal(e.UnpricedModels, []string{"anthropic/claude-opus-4"}) {
		t.Errorf("unpriced: %d requests, models %v; want the 3 of o1-preview, anthropic/claude-opus-4", e.Unpriced, e.UnpricedModels)
	}
	if !near(e.CurrentUSD, 5.00) || !near(e.TargetUSD, 6.00) || !near(e.PlatformDeltaUSD, -5.00) || !near(e.ClientDeltaUSD, 6.00) {
		t.Errorf("estimate $%v now, $%v after, WedSync %+v, supplier %+v", e.CurrentUSD, e.TargetUSD, e.PlatformDeltaUSD, e.ClientDeltaUSD)
	}

	// Without the mapping, gpt-4o on Anthropic would have no price: the
	// plan would say so rather than guess.
	bare := newRig(t, st, "pod-b", nil, func(o *Options) { o.Prices = prices })
	other, err := bare.m.Plan(t.Context(), PlanRequest{Supplier: "bella-photography", To: Target{Mode: billing.ModeClient, Provider: "anthropic"}})
	if err != nil {
		t.Fatal(err)
	}
	if other.Estimate.Requests != 0 || other.Estimate.Unpriced != 0 {
		t.Errorf("another supplier's estimate %+v", other.Estimate)
	}
}

// TestPlanProjection: the plan projects a fixed daily history a year
// forward with the season, now and after, by who pays: peak days at the
// measured 2.5 times the off-peak ones, today and days beyond the history
// window left out.
func TestPlanProjection(t *testing.T) {
	st := openStore(t, "embedded")
	// Every day from January 1 to June 12, 2026 (t0 is June 13): 1M
	// prompt tokens off-peak, 2.5M from March (peak).
	var rows []store.Usage
	for d := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); d.Before(utcDay(t0)); d = d.AddDate(0, 0, 1) {
		tokens := int64(1_000_000)
		if d.Month() >= time.March {
			tokens = 2_500_000
		}
		rows = append(rows, store.Usage{Day: d, Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o-mini",
			KeySource: "platform", Requests: 10, PromptTokens: tokens})
	}
	// Today (partial) and a day before the window are not history.
	rows = append(rows,
		store.Usage{Day: t0, Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Requests: 1, PromptTokens: 900_000_000},
		store.Usage{Day: t0.AddDate(0, 0, -ProjectionDays-1), Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o-mini",
			KeySource: "platform", Requests: 1, PromptTokens: 900_000_000})
	addUsage(t, st, rows...)
	year := t0.AddDate(-2, 0, 0)
	prices, err := usage.NewPriceTable([]usage.Price{
		{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.15, Effective: year},
		{Provider: "azure", Model: "gpt-4o-mini", InputPerMTok: 0.30, Effective: year},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, st, "pod-a", nil, func(o *Options) { o.Prices = prices })
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: Target{Mode: billing.ModeClient, Provider: "azure"}})
	if err != nil {
		t.Fatal(err)
	}
	p := mg.Estimate.Projection
	if p == nil {
		t.Fatal("no projection")
	}
	// Off-peak days cost $0.15 now and $0.30 after; peak days $0.375 and
	// $0.75.
	if !p.Measured || !near(p.PeakFactor, 2.5) || p.HistoryDays != 163 || p.Busiest != "2026-07" {
		t.Errorf("projection basis %q, %d days, factor %v (measured %v), busiest %s", p.Basis, p.HistoryDays, p.PeakFactor, p.Measured, p.Busiest)
	}
	if len(p.Months) != 12 || p.Months[0].Month != "2026-07" || p.Months[11].Month != "2027-06" {
		t.Fatalf("months %+v", p.Months)
	}
	for _, c := range []struct {
		month      string
		now, after float64
	}{
		{"2026-07", 31 * 0.375, 31 * 0.75},
		{"2026-11", 30 * 0.15, 30 * 0.30},
		{"2027-02", 28 * 0.15, 28 * 0.30},
		{"2027-06", 30 * 0.375, 30 * 0.75},
	} {
		i := slices.IndexFunc(p.Months, func(m MonthProjection) bool { return m.Month == c.month })
		m := p.Months[i]
		if !near(m.NowUSD, c.now) || !near(m.AfterUSD, c.after) || !near(m.PlatformNowUSD, c.now) || m.ClientNowUSD != 0 ||
			m.PlatformAfterUSD != 0 || !near(m.ClientAfterUSD, c.after) {
			t.Errorf("%s: %+v; want $%v now paid by WedSync, $%v after paid by the supplier", c.month, m, c.now, c.after)
		}
	}
	// 245 peak days and 120 off-peak ones.
	now, after := 245*0.375+120*0.15, 245*0.75+120*0.30
	if !near(p.NowUSD, now) || !near(p.AfterUSD, after) || !near(p.PlatformDeltaUSD, -now) || !near(p.ClientDeltaUSD, after) {
		t.Errorf("year: $%v now, $%v after, WedSync %+v, supplier %+v; want $%v and $%v", p.NowUSD, p.AfterUSD,
			p.PlatformDeltaUSD, p.ClientDeltaUSD, now, after)
	}

	// Without history, the projection says so and projects zeros.
	empty, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "bella-photography", To: toClient})
	if err != nil {
		t.Fatal(err)
	}
	if p := empty.Estimate.Projection; p == nil || p.HistoryDays != 0 || p.NowUSD != 0 || len(p.Months) != 12 {
		t.Errorf("projection without history %+v", p)
	}
}
