package migrate

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/store"
	"github.com/wedsync/veil/usage"
)

// near reports whether two dollar amounts agree to a billionth.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestPlanEstimate checks the cost estimate against usage aggregates and a
// price table with known numbers: today's prices, not those recorded; the
// target's provider; a model the target has no price for; days outside
// the period and other suppliers left out.
func TestPlanEstimate(t *testing.T) {
	st := openStore(t, "embedded")
	day := func(daysAgo int) time.Time { return t0.AddDate(0, 0, -daysAgo) }
	for i, u := range []store.Usage{
		{Day: day(0), Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Requests: 100, PromptTokens: 1_000_000, CachedTokens: 200_000, CompletionTokens: 500_000, CostMicros: 450_000},
		{Day: day(29), Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Requests: 50, PromptTokens: 400_000, CompletionTokens: 100_000, CostMicros: 100_000},
		{Day: day(3), Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o", KeySource: "platform",
			Requests: 10, PromptTokens: 100_000, CompletionTokens: 20_000, CostMicros: 450_000},
		// Outside the 30 days, and another supplier.
		{Day: day(30), Supplier: "capture-moments", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Requests: 999, PromptTokens: 9_999_999, CostMicros: 9_999_999},
		{Day: day(0), Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o-mini", KeySource: "client",
			Requests: 7, PromptTokens: 70_000, CostMicros: 7_000},
	} {
		if err := st.AddUsage(t.Context(), fmt.Sprintf("plan.%d", i), u); err != nil {
			t.Fatal(err)
		}
	}
	year := t0.AddDate(-1, 0, 0)
	prices, err := usage.NewPriceTable([]usage.Price{
		{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.15, CachedInputPerMTok: 0.075, OutputPerMTok: 0.60, Effective: year},
		// A price cut yesterday: the estimate uses it for all 30 days.
		{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.10, CachedInputPerMTok: 0.05, OutputPerMTok: 0.40, Effective: day(1)},
		{Provider: "openai", Model: "gpt-4o", InputPerMTok: 2.50, CachedInputPerMTok: 1.25, OutputPerMTok: 10.00, Effective: year},
		// No cached price: cached tokens count at the input price.
		{Provider: "azure", Model: "gpt-4o-mini", InputPerMTok: 0.165, OutputPerMTok: 0.66, Effective: year},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, st, "pod-a", nil, func(o *Options) { o.Prices = prices })
	to := Target{Mode: billing.ModeClient, Provider: "azure"}
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: to})
	if err != nil {
		t.Fatal(err)
	}
	e := mg.Estimate
	// gpt-4o-mini today: 800k*0.10 + 200k*0.05 + 500k*0.40 = $0.29, and
	// 400k*0.10 + 100k*0.40 = $0.08; on azure: 1M*0.165 + 500k*0.66 =
	// $0.495 and 400k*0.165 + 100k*0.66 = $0.132. gpt-4o: 100k*2.50 +
	// 20k*10 = $0.45, no azure price: $0.45 on the target too.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"recorded", e.RecordedUSD, 1.00},
		{"current", e.CurrentUSD, 0.82},
		{"target", e.TargetUSD, 1.077},
		{"delta", e.DeltaUSD, 0.257},
		{"platform delta", e.PlatformDeltaUSD, -0.82},
		{"client delta", e.ClientDeltaUSD, 1.077},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s: $%v, want $%v", c.name, c.got, c.want)
		}
	}
	if e.Requests != 160 || e.PromptTokens != 1_500_000 || e.CompletionTokens != 620_000 || e.CachedTokens != 200_000 {
		t.Errorf("totals %d requests, %d prompt, %d completion, %d cached", e.Requests, e.PromptTokens, e.CompletionTokens, e.CachedTokens)
	}
	if e.Unpriced != 10 || e.Days != 30 || !e.From.Equal(utcDay(day(29))) || !e.To.Equal(utcDay(t0)) {
		t.Errorf("unpriced %d, days %d from %v to %v", e.Unpriced, e.Days, e.From, e.To)
	}
	if e.BilledNow != billing.PaidByPlatform || e.BilledAfter != billing.PaidByClient {
		t.Errorf("billed %s now, %s after", e.BilledNow, e.BilledAfter)
	}
	if len(e.Models) != 2 || e.Models[0].Model != "gpt-4o" || e.Models[0].Priced ||
		e.Models[1].Model != "gpt-4o-mini" || !e.Models[1].Priced || !near(e.Models[1].TargetUSD, 0.627) ||
		!near(e.Models[1].CurrentUSD, 0.37) || e.Models[1].Requests != 150 {
		t.Errorf("models %+v", e.Models)
	}

	// Fewer days: only today's row.
	if _, err := r.m.Rollback(t.Context(), mg.ID, "replan"); err != nil {
		t.Fatal(err)
	}
	mg, err = r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: to, Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	if e := mg.Estimate; e.Requests != 100 || !near(e.CurrentUSD, 0.29) || !near(e.TargetUSD, 0.495) {
		t.Errorf("one day: %d requests, $%v now, $%v after", e.Requests, e.CurrentUSD, e.TargetUSD)
	}
}

// TestPlanWithoutPrices estimates at recorded costs.
func TestPlanWithoutPrices(t *testing.T) {
	st := openStore(t, "embedded")
	if err := st.AddUsage(t.Context(), "plan.0", store.Usage{Day: t0, Supplier: "capture-moments", Provider: "openai",
		Model: "gpt-4o-mini", KeySource: "client", Requests: 4, PromptTokens: 4000, CostMicros: 1234}); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, st, "pod-a", nil, func(o *Options) { o.Current = func(string) Target { return Target{Mode: billing.ModeClient} } })
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: Target{Mode: billing.ModePlatform}})
	if err != nil {
		t.Fatal(err)
	}
	e := mg.Estimate
	if !near(e.CurrentUSD, 0.001234) || !near(e.TargetUSD, 0.001234) || e.Unpriced != 4 ||
		!near(e.PlatformDeltaUSD, 0.001234) || !near(e.ClientDeltaUSD, -0.001234) {
		t.Errorf("estimate %+v", e)
	}
}

// TestPlanDefaults: a plan proposes the default stages and gates, has a
// short ID and changes nothing yet.
func TestPlanDefaults(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil, func(o *Options) { o.Dwell = 2 * time.Minute })
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient,
		Stages: []Stage{{Share: 0.25, Dwell: time.Hour}, {Share: 1}}, Reason: "supplier request"})
	if err != nil {
		t.Fatal(err)
	}
	if mg.Stages[0].Dwell != time.Hour || mg.Stages[1].Dwell != 2*time.Minute {
		t.Errorf("stages %+v: a zero dwell takes Options.Dwell", mg.Stages)
	}
	if _, err := r.m.Rollback(t.Context(), mg.ID, "replan"); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute)
	mg, err = r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^mig-[0-9a-f]{8}$`).MatchString(mg.ID) {
		t.Errorf("id %q", mg.ID)
	}
	want := []Stage{{0.10, 2 * time.Minute}, {0.50, 2 * time.Minute}, {1, 2 * time.Minute}}
	if len(mg.Stages) != 3 || mg.Stages[0] != want[0] || mg.Stages[1] != want[1] || mg.Stages[2] != want[2] {
		t.Errorf("stages %+v, want %+v", mg.Stages, want)
	}
	if mg.Gates != (Gates{MaxErrorRate: 0.05, MaxP95Ratio: 1.5, MinSample: 20}) {
		t.Errorf("gates %+v", mg.Gates)
	}
	if mg.Status != StatusPlanned || mg.From != (Target{Mode: billing.ModePlatform}) || mg.To != toClient || !mg.CreatedAt.Equal(r.clock.Now()) ||
		!mg.Probe.OK || mg.Probe.Fingerprint != "5f1c2a9e" || mg.Estimate.Days != DefaultDays {
		t.Errorf("plan %+v", mg)
	}
	if _, ok := decide(r.m, "capture-moments"); ok {
		t.Error("a plan routes the supplier; it must change nothing")
	}
	r.step(t)
	if _, ok := decide(r.m, "capture-moments"); ok {
		t.Error("a plan routes the supplier after a step")
	}
	list, err := r.m.List(t.Context())
	if err != nil || len(list) != 2 || list[0].ID != mg.ID {
		t.Errorf("List = %d migrations (%v), want the 2, newest first", len(list), err)
	}
}

// TestPlanProbeFails: a target whose key the probe refuses is not planned.
func TestPlanProbeFails(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	r.probe.fail.Store(true)
	_, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
	if !errors.Is(err, ErrProbeFailed) {
		t.Fatalf("Plan with a refused key: %v, want ErrProbeFailed", err)
	}
	if list, _ := r.m.List(t.Context()); len(list) != 0 {
		t.Errorf("a refused plan was recorded: %v", list)
	}
	if r.countAudit("migration plan refused: target key probe failed") != 1 {
		t.Errorf("audit %v", r.auditLines())
	}
	// The refusal does not block a later plan.
	r.probe.fail.Store(false)
	if _, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient}); err != nil {
		t.Fatalf("Plan after the key was fixed: %v", err)
	}
}

// TestPlanRefused: invalid requests, a supplier already on the target and
// a second active migration are refused.
func TestPlanRefused(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	noCurrent := newRig(t, openStore(t, "embedded"), "pod-a", nil, func(o *Options) { o.Current = nil })
	for _, tc := range []struct {
		name string
		r    *rig
		req  PlanRequest
		want error
	}{
		{"no supplier", r, PlanRequest{To: toClient}, ErrInvalid},
		{"hybrid", r, PlanRequest{Supplier: "s", To: Target{Mode: "hybrid"}}, ErrInvalid},
		{"not ending at 100%", r, PlanRequest{Supplier: "s", To: toClient, Stages: []Stage{{Share: 0.5}}}, ErrInvalid},
		{"falling shares", r, PlanRequest{Supplier: "s", To: toClient, Stages: []Stage{{Share: 0.5}, {Share: 0.2}, {Share: 1}}}, ErrInvalid},
		{"negative dwell", r, PlanRequest{Supplier: "s", To: toClient, Stages: []Stage{{Share: 1, Dwell: -1}}}, ErrInvalid},
		{"error rate above 1", r, PlanRequest{Supplier: "s", To: toClient, Gates: Gates{MaxErrorRate: 2}}, ErrInvalid},
		{"negative sample", r, PlanRequest{Supplier: "s", To: toClient, Gates: Gates{MinSample: -1}}, ErrInvalid},
		{"too many days", r, PlanRequest{Supplier: "s", To: toClient, Days: 400}, ErrInvalid},
		{"already there", r, PlanRequest{Supplier: "s", To: Target{Mode: billing.ModePlatform}}, ErrNoChange},
		{"unknown current system", noCurrent, PlanRequest{Supplier: "s", To: toClient}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.r.m.Plan(t.Context(), tc.req); !errors.Is(err, tc.want) {
				t.Errorf("Plan = %v, want %v", err, tc.want)
			}
		})
	}
	// From given when Options.Current does not know.
	if mg, err := noCurrent.m.Plan(t.Context(), PlanRequest{Supplier: "s", To: toClient, From: Target{Mode: billing.ModePlatform}}); err != nil || mg.From.Mode != billing.ModePlatform {
		t.Errorf("Plan with From = %v, %v", mg, err)
	}

	first, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"planned", "ramping"} {
		if state == "ramping" {
			if _, err := r.m.Start(t.Context(), first.ID); err != nil {
				t.Fatal(err)
			}
		}
		_, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: Target{Mode: billing.ModeClient, Provider: "azure"}})
		if !errors.Is(err, ErrActive) {
			t.Errorf("second plan while the first is %s: %v, want ErrActive", state, err)
		}
	}
	// Another supplier is not blocked.
	if _, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "bella-photography", To: toClient}); err != nil {
		t.Errorf("another supplier: %v", err)
	}
}

// TestStartRefused: only a planned migration starts, and only with a key
// the probe accepts.
func TestStartRefused(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	if _, err := r.m.Start(t.Context(), "mig-00000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Start of an unknown migration: %v", err)
	}
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
	if err != nil {
		t.Fatal(err)
	}
	r.probe.fail.Store(true)
	if _, err := r.m.Start(t.Context(), mg.ID); !errors.Is(err, ErrProbeFailed) {
		t.Errorf("Start with a refused key: %v, want ErrProbeFailed", err)
	}
	if got := r.get(t, mg.ID); got.Status != StatusPlanned {
		t.Errorf("status %s after a refused start", got.Status)
	}
	r.probe.fail.Store(false)
	r.clock.Advance(time.Minute)
	started, err := r.m.Start(t.Context(), mg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !started.Probe.At.Equal(r.clock.Now()) || !started.StageStarted.Equal(r.clock.Now()) {
		t.Errorf("the start's probe (%v) and stage start (%v) are not now", started.Probe.At, started.StageStarted)
	}
	if _, err := r.m.Start(t.Context(), mg.ID); !errors.Is(err, ErrState) {
		t.Errorf("second Start: %v, want ErrState", err)
	}
}

// TestDamagedDocumentsIgnored: an unreadable migration document is left
// out, not fatal.
func TestDamagedDocumentsIgnored(t *testing.T) {
	st := openStore(t, "embedded")
	r := newRig(t, st, "pod-a", nil)
	mg := startMigration(t, r, "capture-moments", nil)
	for key, value := range map[string]string{"mig-garbage1": "{", "mig-garbage2": `{"id":"mig-garbage2","supplier":"x","stages":[],"status":"ramping"}`} {
		if _, err := st.Put(t.Context(), bucketMigrations, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	r.step(t)
	list, err := r.m.List(t.Context())
	if err != nil || len(list) != 1 || list[0].ID != mg.ID {
		t.Errorf("List = %v, %v; want only %s", list, err, mg.ID)
	}
	if d, ok := decide(r.m, "capture-moments"); !ok || d.ID != mg.ID {
		t.Errorf("routing lost: %+v, %v", d, ok)
	}
}

// TestPlanConcurrent: plans racing on two replicas sharing Redis leave one
// active migration; the others are refused and leave nothing behind.
func TestPlanConcurrent(t *testing.T) {
	stores := openStores(t, "redis", 2)
	c := newClock()
	rigs := []*rig{newRig(t, stores[0], "pod-a", c), newRig(t, stores[1], "pod-b", c)}
	const callers = 12
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			_, errs[i] = rigs[i%2].m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrActive) && !errors.Is(err, ErrConflict):
			t.Errorf("Plan: %v, want ErrActive or ErrConflict", err)
		}
	}
	list, err := rigs[0].m.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(list) != 1 {
		t.Errorf("%d plans succeeded and %d are stored, want 1 and 1", ok, len(list))
	}
}
