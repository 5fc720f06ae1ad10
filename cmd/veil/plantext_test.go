package main

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/migrate"
)

// TestPrintPlanText: the plan's text names what serves each model after
// the migration, the models without a price, and the projection month by
// month with who pays more or less.
func TestPrintPlanText(t *testing.T) {
	at := time.Date(2026, 6, 13, 14, 0, 0, 0, time.UTC)
	months := []migrate.MonthProjection{
		{Month: "2026-07", PeakDays: 31, NowUSD: 11.625, AfterUSD: 23.25, PlatformNowUSD: 11.625, ClientAfterUSD: 23.25},
		{Month: "2026-11", PeakDays: 0, NowUSD: 4.5, AfterUSD: 9, PlatformNowUSD: 4.5, ClientAfterUSD: 9},
		{Month: "2027-03", PeakDays: 31, NowUSD: 0.5, AfterUSD: 0.25, PlatformNowUSD: 0.5, ClientAfterUSD: 0.25},
	}
	m := &migrate.Migration{Plan: migrate.Plan{ID: "mig-0123abcd", Supplier: "bella-photography",
		From: migrate.Target{Mode: billing.ModePlatform, Provider: "openai"}, To: migrate.Target{Mode: billing.ModeClient, Provider: "anthropic"},
		Stages: []migrate.Stage{{Share: 1, Dwell: time.Hour}}, CreatedAt: at, Probe: migrate.ProbeResult{OK: true, Status: 200, At: at},
		Estimate: migrate.CostEstimate{Days: 30, From: at.AddDate(0, 0, -29), To: at, Requests: 199, CurrentUSD: 4.25, TargetUSD: 5.25,
			DeltaUSD: 1, PlatformDeltaUSD: -4.25, ClientDeltaUSD: 5.25, Unpriced: 3, UnpricedModels: []string{"anthropic/claude-opus-4"},
			BilledNow: billing.PaidByPlatform, BilledAfter: billing.PaidByClient,
			Models: []migrate.ModelEstimate{
				{Provider: "openai", Model: "gpt-4o", TargetProvider: "anthropic", TargetModel: "claude-sonnet-4", Requests: 196,
					CurrentUSD: 3.5, TargetUSD: 4.5, Priced: true},
				{Provider: "openai", Model: "o1-preview", TargetProvider: "anthropic", TargetModel: "claude-opus-4", Requests: 3,
					CurrentUSD: 0.75, TargetUSD: 0.75},
			},
			Projection: &migrate.CostProjection{Basis: "daily rates of 104 peak and 59 off-peak days of history", HistoryDays: 163,
				PeakFactor: 2.5, Measured: true, Months: months, NowUSD: 16.625, AfterUSD: 32.5, PlatformDeltaUSD: -16.625,
				ClientDeltaUSD: 32.5, Busiest: "2026-07"}}},
		Status: migrate.StatusPlanned}
	var b strings.Builder
	printPlan(&b, m)
	out := b.String()
	wantAll(t, "plan", out,
		"3 requests are of models without a price today, counted at their recorded cost: anthropic/claude-opus-4",
		"AFTER ON", "anthropic/claude-sonnet-4", "anthropic/claude-opus-4", "(unpriced)",
		"Projection for 2026-07 to 2027-03 at today's prices, with the wedding season (March to October):",
		"from daily rates of 104 peak and 59 off-peak days of history; a peak day at 2.5x an off-peak one (measured)",
		"now paid by WedSync (platform keys), after by the supplier (its own key)",
		"MONTH", "SEASON", "WEDSYNC", "SUPPLIER", "busiest month: 2026-07")
	for _, line := range []string{
		"2026-07  peak  $11.62  $23.25  -$11.62  +$23.25",
		"2026-11  off-peak  $4.50  $9.00  -$4.50  +$9.00",
		"2027-03  peak  $0.5000  $0.2500  -$0.5000  +$0.2500",
		"year  $16.62  $32.50  -$16.62  +$32.50",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), line) {
			t.Errorf("plan lacks the row %q:\n%s", line, out)
		}
	}
	if strings.Contains(out, "no usage before today") {
		t.Errorf("plan says it has no history:\n%s", out)
	}
}
