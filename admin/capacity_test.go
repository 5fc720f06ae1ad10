package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/store"
)

const capacityYAML = `providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://K}
callers:
  - {name: app, token: env://T, suppliers: ["*"]}
tiers:
  - {name: starter, requests_per_minute: 10, tokens_per_minute: 10000, monthly_tokens: 100000}
  - {name: pro, requests_per_minute: 100}
  - {name: studio, requests_per_minute: 1000}
suppliers:
  default_tier: starter
  entries:
    - {id: bella-photography, tier: pro}
    - {id: rose-venue}
usage:
  sinks: []
`

// capacityNow is mid-February, off-peak, with the season ahead.
var capacityNow = time.Date(2026, 2, 15, 12, 0, 30, 0, time.UTC)

// capacityRuntime builds the runtime of capacityYAML on a real store.
func capacityRuntime(t *testing.T) (*generation.Runtime, store.Store) {
	t.Helper()
	env := map[string]string{"K": "sk-platform-test", "T": "veil-caller-test"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.ParseWithEnv([]byte(capacityYAML), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rt, err := generation.Build(cfg, nil, generation.Deps{Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Retire(0) })
	return rt, st
}

// addHistory writes a year of daily usage up to yesterday: lakeside-barn
// on platform keys, 300 requests a day in the season and 100 off it, of
// 1,000 tokens each and $0.50 a day; and rose-venue on its own key, which
// is not the platform's to carry.
func addHistory(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	today := time.Date(capacityNow.Year(), capacityNow.Month(), capacityNow.Day(), 0, 0, 0, 0, time.UTC)
	for d := today.AddDate(-1, 0, 0); d.Before(today); d = d.AddDate(0, 0, 1) {
		requests := int64(100)
		if m := d.Month(); m >= time.March && m <= time.October {
			requests = 300
		}
		platform := store.Usage{Day: d, Supplier: "lakeside-barn", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Billed: "platform", Requests: requests, PromptTokens: requests * 800, CompletionTokens: requests * 200, CostMicros: 500_000}
		client := store.Usage{Day: d, Supplier: "rose-venue", Provider: "openai", Model: "gpt-4o-mini", KeySource: "client",
			Billed: "client", Requests: 5000, PromptTokens: 1 << 30, CostMicros: 90_000_000}
		for i, u := range []store.Usage{platform, client} {
			if err := st.AddUsage(ctx, fmt.Sprintf("%s-%d", d.Format(time.DateOnly), i), u); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// admit reserves n calls of about 400 tokens for supplier.
func admit(t *testing.T, q *quota.Enforcer, supplier string, n int) {
	t.Helper()
	for i := range n {
		_, ref, err := q.Admit(context.Background(), quota.Request{Supplier: []byte(supplier), Provider: "openai", Model: "gpt-4o-mini",
			Prompt: 300, MaxTokens: 100, Completion: true, Now: capacityNow})
		if err != nil || ref != nil {
			t.Fatalf("admit %s %d: %+v %v", supplier, i, ref, err)
		}
	}
}

func TestBuildCapacity(t *testing.T) {
	rt, st := capacityRuntime(t)
	addHistory(t, st)
	admit(t, rt.Quota, "rose-venue", 3)
	admit(t, rt.Quota, "lakeside-barn", 9)
	reg := health.NewRegistry("openai", "anthropic")
	reg.Target("openai").ReportRateLimits(health.RateLimits{RemainingRequests: 0, RemainingTokens: 250, LimitRequests: 1,
		LimitTokens: 1000, ResetRequests: 6 * time.Millisecond, ResetTokens: time.Second}, capacityNow.Add(-time.Second))

	rep := admin.BuildCapacity(context.Background(), rt, reg, st,
		admin.CapacityQuery{Top: 1, Threshold: 0.1, HistoryDays: admin.DefaultCapacityHistoryDays}, capacityNow)
	if len(rep.Problems) > 0 {
		t.Fatalf("problems: %v", rep.Problems)
	}

	t.Run("providers", func(t *testing.T) {
		if len(rep.Providers) != 2 || rep.Providers[0].Provider != "anthropic" || rep.Providers[1].Provider != "openai" {
			t.Fatalf("providers %+v", rep.Providers)
		}
		if a := rep.Providers[0]; a.ReportedAt != nil || a.Requests.Limit != nil || a.Requests.ShareLeft != nil {
			t.Errorf("anthropic never reported, yet %+v", a)
		}
		o := rep.Providers[1]
		if o.Requests.Limit == nil || *o.Requests.Limit != 1 || *o.Requests.Remaining != 0 || *o.Requests.ShareLeft != 0 {
			t.Errorf("openai requests %+v", o.Requests)
		}
		if o.Tokens.ShareLeft == nil || *o.Tokens.ShareLeft != 0.25 || o.Tokens.Reset == nil ||
			!o.Tokens.Reset.Equal(capacityNow) || o.ReportedAt == nil {
			t.Errorf("openai tokens %+v, reported at %v", o.Tokens, o.ReportedAt)
		}
	})

	t.Run("tiers", func(t *testing.T) {
		var names []string
		for _, tu := range rep.Tiers {
			names = append(names, tu.Tier)
		}
		if !slices.Equal(names, []string{"pro", "starter", "studio"}) {
			t.Fatalf("tiers %v, want every configured tier", names)
		}
		pro, starter, studio := rep.Tiers[0], rep.Tiers[1], rep.Tiers[2]
		if pro.Suppliers != 1 || len(pro.Top) != 1 || pro.Top[0].Supplier != "bella-photography" || pro.Top[0].HighestShare != 0 {
			t.Errorf("pro %+v", pro)
		}
		if studio.Suppliers != 0 || len(studio.Top) != 0 || studio.Limits[0].PerSupplier != 1000 || studio.Limits[0].ShareUsed != nil {
			t.Errorf("studio %+v", studio)
		}
		// rose-venue (named by the config) and lakeside-barn (found in
		// this month's aggregates) are on starter by default.
		if starter.Suppliers != 2 {
			t.Errorf("starter has %d suppliers, want 2", starter.Suppliers)
		}
		rpm := starter.Limits[0]
		if rpm.Limit != quota.LimitRequests || rpm.PerSupplier != 10 || rpm.Used != 12 || rpm.ShareUsed == nil ||
			*rpm.ShareUsed != 0.6 || rpm.NearLimit != 1 || rpm.AtLimit != 0 {
			t.Errorf("starter rpm %+v", rpm)
		}
		if mt := starter.Limits[2]; mt.Limit != quota.LimitMonthTokens || mt.Used != 12*400 || mt.PerSupplier != 100000 {
			t.Errorf("starter month tokens %+v", mt)
		}
		if len(starter.Top) != 1 || starter.Top[0].Supplier != "lakeside-barn" || starter.Top[0].HighestShare != 0.9 ||
			starter.Top[0].HighestLimit != quota.LimitRequests {
			t.Errorf("starter's top supplier %+v, want lakeside-barn at 90%% of its rpm", starter.Top)
		}
	})

	t.Run("forecast", func(t *testing.T) {
		f := rep.Forecast
		if f.HistoryTo != "2026-02-14" || f.PeakSeason != "03-01 to 10-31" || f.Threshold != 0.1 {
			t.Errorf("forecast window %s..%s, season %s, threshold %v", f.HistoryFrom, f.HistoryTo, f.PeakSeason, f.Threshold)
		}
		if f.RequestsPerMinute == nil || *f.RequestsPerMinute != 1 || f.TokensPerMinute == nil || *f.TokensPerMinute != 1000 {
			t.Errorf("capacity %v rpm %v tpm", f.RequestsPerMinute, f.TokensPerMinute)
		}
		if len(f.Basis) != 3 || !f.Basis[0].Measured || f.Basis[0].PeakFactor != 3 || f.Basis[2].PeakFactor != 1 {
			t.Errorf("basis %+v", f.Basis)
		}
		if len(f.Months) != 12 || f.Months[0].Month != "2026-03" || f.Months[11].Month != "2027-02" {
			t.Fatalf("months %+v", f.Months)
		}
		march, nov := f.Months[0], f.Months[8]
		if march.Requests != 31*300 || march.Tokens != 31*300*1000 || march.CostUSD != 15.5 || march.PeakDays != 31 {
			t.Errorf("March %+v", march)
		}
		if march.RequestsCapacity == nil || *march.RequestsCapacity != 31*24*60 || !march.AboveThreshold {
			t.Errorf("March against capacity %+v", march)
		}
		if nov.Requests != 30*100 || nov.AboveThreshold || nov.RequestsShare == nil || *nov.RequestsShare != 0.0694 {
			t.Errorf("November %+v", nov)
		}
		season := []string{"2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10"}
		if !slices.Equal(f.PeakMonths, season) || !slices.Equal(f.Flagged, season) {
			t.Errorf("peak months %v, flagged %v; want the season's", f.PeakMonths, f.Flagged)
		}
	})
}

// TestBuildCapacityPool: a provider whose platform keys are in two
// organisations, each with its own limits, has their sum as its capacity,
// and the headroom of both, not whichever answered last; a second key of
// an organisation adds nothing.
func TestBuildCapacityPool(t *testing.T) {
	rt, st := capacityRuntime(t)
	reg := health.NewRegistry("openai")
	tg := reg.Target("openai")
	now := time.Now()
	orgA, orgB := health.OrgAccount([]byte("org-wedsync-a")), health.OrgAccount([]byte("org-wedsync-b"))
	report := func(acct uint64, limit, left int64, at time.Time) {
		tg.ReportAccountRateLimits(acct, health.RateLimits{LimitRequests: limit, RemainingRequests: left, LimitTokens: limit * 1000,
			RemainingTokens: left * 1000, ResetRequests: time.Minute, ResetTokens: time.Minute}, at)
	}
	report(orgB, 9000, 8100, now.Add(-2*time.Second))
	report(orgA, 1000, 25, now.Add(-time.Second))
	report(orgA, 1000, 20, now) // another key of org-wedsync-a, last to answer
	rep := admin.BuildCapacity(context.Background(), rt, reg, st,
		admin.CapacityQuery{Top: 1, Threshold: 0.5, HistoryDays: 30}, capacityNow)
	o := rep.Providers[0]
	if o.Accounts != 2 || o.Requests.Limit == nil || *o.Requests.Limit != 10000 || *o.Requests.Remaining != 8120 ||
		*o.Tokens.Limit != 10_000_000 || o.ReportedAt == nil || !o.ReportedAt.Equal(now) {
		t.Errorf("openai %+v, requests %+v: want two organisations' 10000 requests with 8120 left", o, o.Requests)
	}
	if o.Headroom == nil || *o.Headroom < 0.81 || *o.Headroom > 0.83 {
		t.Errorf("headroom %v, want about 0.81 (not the 0.02 org-wedsync-a has)", o.Headroom)
	}
	if f := rep.Forecast; f.RequestsPerMinute == nil || *f.RequestsPerMinute != 10000 {
		t.Errorf("capacity %v rpm, want the pool's 10000", f.RequestsPerMinute)
	}
}

func TestBuildCapacityWithoutStore(t *testing.T) {
	rt, st := capacityRuntime(t)
	reg := health.NewRegistry("openai")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	rep := admin.BuildCapacity(context.Background(), rt, reg, st,
		admin.CapacityQuery{Top: 5, Threshold: 0.5, HistoryDays: 30}, capacityNow)
	problems := strings.Join(rep.Problems, "\n")
	if !strings.Contains(problems, "usage aggregates") || !strings.Contains(problems, "quota counters: 2 of 2 suppliers") {
		t.Errorf("problems %q", problems)
	}
	if len(rep.Providers) != 1 || len(rep.Tiers) != 3 || len(rep.Forecast.Months) != 12 || len(rep.Forecast.Flagged) != 0 {
		t.Errorf("the rest of the report: %+v", rep)
	}
	if rep.Forecast.RequestsPerMinute != nil || rep.Forecast.Months[0].RequestsShare != nil {
		t.Errorf("a capacity without any provider's report: %+v", rep.Forecast)
	}
}

func TestCapacityQuery(t *testing.T) {
	rt, st := capacityRuntime(t)
	h := admin.Capacity(fixedRuntime{rt}, health.NewRegistry("openai"), st)
	tests := []struct {
		query      string
		wantStatus int
	}{
		{"", http.StatusOK},
		{"top=2&threshold=0.8&history_days=90", http.StatusOK},
		{"top=-1", http.StatusBadRequest},
		{"top=many", http.StatusBadRequest},
		{"threshold=0", http.StatusBadRequest},
		{"threshold=NaN", http.StatusBadRequest},
		{"history_days=0", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			status, doc := h(context.Background(), admin.Call{Query: q})
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %+v", status, tt.wantStatus, doc)
			}
			if status != http.StatusOK {
				if errorCode(doc) != "bad_query" {
					t.Errorf("error %+v", doc)
				}
				return
			}
			rep := doc.(admin.CapacityReport)
			if want := q.Get("threshold"); want != "" && fmt.Sprint(rep.Forecast.Threshold) != want {
				t.Errorf("threshold %v, want %s", rep.Forecast.Threshold, want)
			}
		})
	}
	if v := (admin.CapacityQuery{Top: 2, Threshold: 0.8, HistoryDays: 90}).Values().Encode(); v != "history_days=90&threshold=0.8&top=2" {
		t.Errorf("query string %q", v)
	}
}
