package console_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/console"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/store"
)

// The tokens of the fake authenticator and who holds them.
const (
	viewerToken   = "viewer-token-0123456789"
	operatorToken = "operator-token-0123456789"
	adminToken    = "admin-token-0123456789"
	// hostileSupplier is a supplier ID that must render as text.
	hostileSupplier = `<script>alert("x")</script>`
)

// authenticate is the fake authenticator: three named tokens.
func authenticate(token string) (name, role string, ok bool) {
	switch token {
	case viewerToken:
		return "vera", console.RoleViewer, true
	case operatorToken:
		return "otto", console.RoleOperator, true
	case adminToken:
		return "ada", console.RoleAdmin, true
	case "odd-role-token":
		return "odd", "superuser", true
	}
	return "", "", false
}

var t0 = time.Date(2026, 7, 14, 9, 30, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// fakeStatus is the providers page's source.
func fakeStatus() admin.Status {
	return admin.Status{
		Version: "v1.4.0", Uptime: "3h12m0s", Listen: config.Listen{Proxy: "127.0.0.1:8080", Admin: "127.0.0.1:9090"},
		Reload: admin.ReloadStatus{Generation: 3, At: t0, OK: true},
		Providers: []admin.ProviderStatus{
			{Name: "openai", Type: "openai", BaseURL: "https://api.openai.example/v1", Models: []string{"gpt-4o", "gpt-4o-mini"},
				KeyFingerprints: []string{"sha256:1a2b3c4d", "sha256:5e6f7a8b"}, Default: true},
			{Name: "azure", Type: "azure", BaseURL: "https://wedsync.azure.example", KeyFingerprints: []string{"sha256:9c0d1e2f"}},
		},
		Callers: []string{"wedsync-web", "wedsync-jobs"},
		Health: []health.Snapshot{
			{Target: "openai", Successes: 18230, Failures: 41, RateLimited: 12, LatencyEWMAms: 812.4, TTFTEWMAms: 240.2,
				SuccessRate: ptr(0.997), LastStatus: 200, Breaker: health.Closed, RemainingRequests: ptr[int64](4120),
				RemainingTokens: ptr[int64](1890000), LastSuccess: ptr(t0)},
			{Target: "azure", Successes: 5210, Failures: 230, LatencyEWMAms: 1310.8, SuccessRate: ptr(0.81), LastStatus: 503,
				Breaker: health.HalfOpen, LastFailure: ptr(t0)},
		},
	}
}

// fakeSuppliers is the suppliers pages' source.
type fakeSuppliers struct{}

var _ console.SupplierReader = fakeSuppliers{}

func (fakeSuppliers) Suppliers() []string {
	return []string{"bella-photography", "rosa-florals", hostileSupplier}
}

func (fakeSuppliers) Supplier(id string) admin.SupplierSettings {
	switch id {
	case "bella-photography":
		return admin.SupplierSettings{ID: id, EffectiveMode: admin.EffectiveMode{Mode: billing.ModeClient}, Tier: "pro", PreferredProvider: "openai", AllowPlatformFallback: true}
	case "rosa-florals":
		return admin.SupplierSettings{ID: id, EffectiveMode: admin.EffectiveMode{Mode: billing.ModePlatform}, Tier: "starter"}
	}
	return admin.SupplierSettings{ID: id, EffectiveMode: admin.EffectiveMode{Mode: billing.ModePlatform}}
}

func (fakeSuppliers) Keys() []keys.Status {
	return []keys.Status{
		{Supplier: "bella-photography", Provider: "openai", Version: "4", Fingerprint: "sha256:77aa88bb", FetchedAt: t0, CheckedAt: t0},
		{Supplier: "rosa-florals", Provider: "openai", Missing: true, CheckedAt: t0, LastError: "vault: no key at secret/rosa"},
	}
}

func (fakeSuppliers) Explain(_ context.Context, supplier, workflow, model string) (admin.Explanation, error) {
	ex := admin.Explanation{Supplier: supplier, Workflow: workflow, Model: model, EffectiveMode: admin.EffectiveMode{Mode: billing.ModeClient},
		Attempts: []admin.AttemptPlan{
			{Provider: "openai", Model: "gpt-4o-mini", KeySource: billing.KeySource("client"), Reason: "supplier's own key"},
			{Provider: "azure", Model: "gpt-4o-mini", KeySource: billing.KeySource("platform"), Reason: "platform fallback"},
		},
		Tier: &admin.TierExplanation{Name: "pro", OnExhausted: "fallback", Limits: map[string]int64{"requests_per_minute": 600},
			Used: map[string]int64{"requests_per_minute": 42}},
	}
	return ex, nil
}

// fakeMigrations holds migrations and rolls them back.
type fakeMigrations struct {
	mu       sync.Mutex
	m        map[string]*migrate.Migration
	reasons  []string
	failWith error
}

var (
	_ admin.MigrationReader     = (*fakeMigrations)(nil)
	_ admin.MigrationRollbacker = (*fakeMigrations)(nil)
)

func newFakeMigrations() *fakeMigrations {
	stages := []migrate.Stage{{Share: 0.1, Dwell: 10 * time.Minute}, {Share: 0.5, Dwell: 10 * time.Minute}, {Share: 1, Dwell: 10 * time.Minute}}
	gates := migrate.Gates{MaxErrorRate: 0.05, MaxP95Ratio: 1.5, MinSample: 20}
	ramping := &migrate.Migration{Plan: migrate.Plan{ID: "mig-0a1b2c3d", Supplier: "bella-photography",
		From: migrate.Target{Mode: billing.ModePlatform, Provider: "openai"}, To: migrate.Target{Mode: billing.ModeClient, Provider: "openai"},
		Stages: stages, Gates: gates, Reason: "supplier request", CreatedAt: t0.Add(-2 * time.Hour),
		Probe:    migrate.ProbeResult{OK: true, Status: 200, Fingerprint: "sha256:77aa88bb", At: t0.Add(-2 * time.Hour)},
		Estimate: migrate.CostEstimate{Days: 30, Requests: 41200, CurrentUSD: 182.4, TargetUSD: 182.4, BilledNow: "platform", BilledAfter: "client", PlatformDeltaUSD: -182.4, ClientDeltaUSD: 182.4}},
		Status: migrate.StatusRamping, Stage: 1, StageStarted: t0.Add(-20 * time.Minute), UpdatedAt: t0.Add(-20 * time.Minute),
		Events: []migrate.Event{
			{At: t0.Add(-2 * time.Hour), Kind: migrate.EventPlanned, Message: "planned: platform/openai to client/openai"},
			{At: t0.Add(-90 * time.Minute), Kind: migrate.EventStarted, Message: "started: 10% on client/openai"},
			{At: t0.Add(-20 * time.Minute), Kind: migrate.EventAdvanced, Stage: 1, Message: "advanced to 50%: gates met over 212 requests"},
		}}
	failed := &migrate.Migration{Plan: migrate.Plan{ID: "mig-9f8e7d6c", Supplier: "rosa-florals",
		From: migrate.Target{Mode: billing.ModeClient, Provider: "openai"}, To: migrate.Target{Mode: billing.ModePlatform, Provider: "azure"},
		Stages: stages, Gates: gates, CreatedAt: t0.Add(-48 * time.Hour)},
		Status: migrate.StatusFailed, FinishedAt: t0.Add(-47 * time.Hour), UpdatedAt: t0.Add(-47 * time.Hour),
		Events: []migrate.Event{{At: t0.Add(-47 * time.Hour), Kind: migrate.EventFailed, Message: "error rate 9.1% above 5%"}}}
	return &fakeMigrations{m: map[string]*migrate.Migration{ramping.ID: ramping, failed.ID: failed}}
}

func (f *fakeMigrations) List(context.Context) ([]*migrate.Migration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*migrate.Migration
	for _, m := range f.m {
		c := *m
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *migrate.Migration) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (f *fakeMigrations) Get(_ context.Context, id string) (*migrate.Migration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.m[id]
	if !ok {
		return nil, fmt.Errorf("migrate: %s: %w", id, migrate.ErrNotFound)
	}
	c := *m
	return &c, nil
}

func (f *fakeMigrations) Rollback(_ context.Context, id, reason string) (*migrate.Migration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return nil, f.failWith
	}
	m, ok := f.m[id]
	if !ok {
		return nil, fmt.Errorf("migrate: %s: %w", id, migrate.ErrNotFound)
	}
	if m.Status.Final() && m.Status != migrate.StatusCompleted {
		return nil, fmt.Errorf("migrate: rollback %s: %w: it is already %s", id, migrate.ErrState, m.Status)
	}
	f.reasons = append(f.reasons, reason)
	m.Status = migrate.StatusRolledBack
	m.Events = append(m.Events, migrate.Event{At: t0, Kind: migrate.EventRolledBack, Stage: m.Stage, Message: "rolled back: " + reason})
	c := *m
	return &c, nil
}

func (f *fakeMigrations) rollbacks() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reasons)
}

// fakeComparisons is the comparisons pages' source.
type fakeComparisons struct{}

var _ console.ComparisonReader = fakeComparisons{}

func fakeReport() compare.Report {
	c := compare.Comparison{ID: "cmp-5a6b7c8d", Request: compare.Request{Supplier: "bella-photography", Other: billing.ModeClient,
		Requests: 500, Sample: 0.2, Billed: "platform"}, Primary: billing.ModePlatform, Started: t0.Add(-6 * time.Hour),
		Status: compare.Done, Ended: t0.Add(-time.Hour), Reason: "requests", Shadowed: 500, Recorded: 488}
	hist := func(counts ...int64) []compare.LatencyBucket {
		bounds := []int64{0, 250, 500, 1000, 2000, 5000}
		out := make([]compare.LatencyBucket, len(counts))
		for i, n := range counts {
			out[i] = compare.LatencyBucket{FromMS: bounds[i], Count: n}
			if i+1 < len(bounds) {
				out[i].ToMS = bounds[i+1]
			}
		}
		return out
	}
	var simHist []compare.SimilarityBin
	for i, n := range []int64{0, 0, 1, 2, 4, 9, 22, 50, 180, 220} {
		simHist = append(simHist, compare.SimilarityBin{From: float64(i) / 10, To: float64(i+1) / 10, Count: n})
	}
	proj := &compare.Projection{Basis: "Daily rates of 120 off-peak and 245 peak days of the supplier's usage.", Season: "March to October",
		HistoryDays: 365}
	for i, m := range []string{"2026-08", "2026-09", "2026-10", "2026-11", "2026-12", "2027-01", "2027-02", "2027-03", "2027-04", "2027-05", "2027-06", "2027-07"} {
		peak := 31
		if i >= 3 && i <= 6 {
			peak = 0
		}
		now := int64(180_000_000 + 4_000_000*peak)
		proj.Months = append(proj.Months, compare.ProjectedMonth{Month: m, PeakDays: peak, NowMicros: now, AfterMicros: now * 108 / 100,
			NowPlatformMicros: now, AfterClientMicros: now * 108 / 100})
	}
	return compare.Report{Comparison: c,
		Primary: compare.Side{System: billing.ModePlatform, PaidBy: billing.PaidByPlatform, Requests: 500, Errors: 4, ErrorRate: 0.008,
			LatencyP50: 820 * time.Millisecond, LatencyP95: 1900 * time.Millisecond, TTFTP50: 240 * time.Millisecond,
			MeanPromptTokens: 412, MeanCompletionTokens: 188, CostUSD: 0.61, CostPer1K: 1.22, LatencyHistogram: hist(12, 90, 150, 200, 40, 4)},
		Shadow: compare.Side{System: billing.ModeClient, PaidBy: billing.PaidByClient, Requests: 500, Errors: 9, ErrorRate: 0.018,
			LatencyP50: 760 * time.Millisecond, LatencyP95: 2300 * time.Millisecond, MeanPromptTokens: 412, MeanCompletionTokens: 201,
			CostUSD: 0.66, CostPer1K: 1.32, LatencyHistogram: hist(20, 110, 140, 160, 55, 6)},
		Similarity: compare.SimilarityStats{Pairs: 488, Method: "judge gpt-4o-mini", Mean: 0.87, P10: 0.71, Similar: 0.82, Threshold: 0.8,
			Histogram: simHist},
		Sample: compare.Sample{Recorded: 500, Compared: 488, Needed: 30},
		Cost: compare.Cost{Requests: 500, NowMicros: 610000, AfterMicros: 660000, TrialBilledTo: billing.PaidByPlatform,
			ByPayer: []compare.PayerCost{{Payer: billing.PaidByPlatform, NowMicros: 610000}, {Payer: billing.PaidByClient, AfterMicros: 660000}}},
		Workflows: []compare.WorkflowReport{
			{Workflow: "planning", Share: 0.6, Sample: compare.Sample{Recorded: 300, Compared: 293, Needed: 30},
				Primary: compare.Side{LatencyP95: 2100 * time.Millisecond}, Shadow: compare.Side{LatencyP95: 2500 * time.Millisecond},
				Similarity:         compare.SimilarityStats{Method: "judge gpt-4o-mini", Mean: 0.86, Similar: 0.81, Threshold: 0.7},
				CostNowPer1KMicros: 1300000, CostAfterPer1KMicros: 1400000, Recommendation: "migrate",
				Reasons: []string{"timelines are complete and consistent in 81% of pairs"}},
			{Workflow: "photography", Share: 0.4, Sample: compare.Sample{Recorded: 200, Compared: 195, Needed: 30},
				Primary: compare.Side{LatencyP95: 1500 * time.Millisecond}, Shadow: compare.Side{LatencyP95: 1800 * time.Millisecond},
				Similarity:         compare.SimilarityStats{Method: "embeddings text-embedding-3-small", Mean: 0.91, Similar: 0.9, Threshold: 0.85},
				CostNowPer1KMicros: 1100000, CostAfterPer1KMicros: 1200000, Recommendation: "migrate"},
		},
		Projection:     proj,
		Recommendation: "migrate",
		Reasons:        []string{"the client side's error rate 1.8% is within 5%", "answers are similar: 82% at or above 0.80"},
		Notes:          []string{"after the move the supplier pays for its calls: about $4.10 a month in the peak"},
	}
}

func (fakeComparisons) List(context.Context) ([]*compare.Comparison, error) {
	r := fakeReport()
	return []*compare.Comparison{&r.Comparison}, nil
}

func (fakeComparisons) Report(_ context.Context, id string) (compare.Report, error) {
	if id != fakeReport().Comparison.ID {
		return compare.Report{}, fmt.Errorf("compare: %s: %w", id, compare.ErrNotFound)
	}
	return fakeReport(), nil
}

// fakeUsage holds daily aggregates for the last week of any range.
type fakeUsage struct {
	mu    sync.Mutex
	calls int
}

var _ admin.UsageQuerier = (*fakeUsage)(nil)

func (f *fakeUsage) QueryUsage(_ context.Context, q store.UsageQuery) ([]store.Usage, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	var out []store.Usage
	for d := range 7 {
		to := q.To.UTC()
		day := time.Date(to.Year(), to.Month(), to.Day()-6+d, 0, 0, 0, 0, time.UTC)
		if day.Before(q.From) {
			continue
		}
		for i, w := range []string{"photography", "venue", "florals"} {
			out = append(out,
				store.Usage{Day: day, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
					Billed: "platform", Workflow: w, Requests: int64(100 + 10*d + i), PromptTokens: 40000, CompletionTokens: 9000,
					CostMicros: int64(210000 + 15000*d + 5000*i)},
				store.Usage{Day: day, Supplier: "rosa-florals", Provider: "openai", Model: "gpt-4o", KeySource: "client",
					Billed: "client", Workflow: w, Requests: int64(40 + 5*d), PromptTokens: 12000, CompletionTokens: 3000,
					CostMicros: int64(120000 + 9000*d)})
		}
	}
	return out, nil
}

// fakeOptions are console options over every fake.
func fakeOptions() (console.Options, *fakeMigrations) {
	m := newFakeMigrations()
	return console.Options{
		Authenticate: authenticate,
		Status:       console.StatusFunc(fakeStatus),
		Suppliers:    fakeSuppliers{},
		Migrations:   m,
		Rollback:     m,
		Comparisons:  fakeComparisons{},
		Usage:        &fakeUsage{},
	}, m
}
