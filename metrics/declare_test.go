package metrics

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
)

// testConfig is a config with two providers, one of them with models and
// prices, two tiers and two seasons.
func testConfig() *config.Config {
	return &config.Config{
		Providers: []config.Provider{
			{Name: "openai", Models: []string{"gpt-4o-mini"}, ModelMap: map[string]string{"wedsync-fast": "gpt-4o-mini"}},
			{Name: "anthropic"},
		},
		Prices: []config.Price{
			{Provider: "openai", Model: "gpt-4o"},
			{Provider: "openai", Model: "gpt-4o-mini"},
			{Provider: "azure", Model: "gpt-4o"}, // no such provider
		},
		Tiers: []config.Tier{{Name: "starter"}, {Name: "pro"}},
		Seasons: []config.Season{
			{Name: "peak", From: "03-01", To: "10-31", TimeZone: "Europe/London"},
			{Name: "holidays", From: "12-15", To: "01-05"},
		},
	}
}

// started is a registry as a process has it right after start: the
// config declared, the health registry watched, the usage sinks reported
// by the emitter as it starts.
func started(t *testing.T) *Metrics {
	t.Helper()
	m := New()
	cfg := testConfig()
	names := make([]string, len(cfg.Providers))
	for i, p := range cfg.Providers {
		names[i] = p.Name
	}
	m.WatchHealth(health.NewRegistry(names...))
	m.SetModels([]string{"gpt-4o", "gpt-4o-mini", "wedsync-fast"})
	m.Declare(cfg)
	m.QueueDepth("stdout", 0)
	return m
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// described lists the names of every family the registry describes.
func described(t *testing.T, r *prometheus.Registry) []string {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		r.Describe(ch)
		close(ch)
	}()
	var names []string
	for d := range ch {
		if s := fqName.FindStringSubmatch(d.String()); s != nil {
			names = append(names, s[1])
		}
	}
	if len(names) == 0 {
		t.Fatal("the registry describes nothing")
	}
	return names
}

// seriesOf maps each family of r to the label sets of its series, as
// name{k="v",...} strings.
func seriesOf(t *testing.T, r prometheus.Gatherer) map[string][]string {
	t.Helper()
	families, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[f.GetName()] = append(out[f.GetName()], strings.Join(labels, ","))
		}
	}
	return out
}

func TestEveryFamilyFromTheStart(t *testing.T) {
	m := started(t)
	got := seriesOf(t, m.Registry)
	for _, name := range described(t, m.Registry) {
		if !strings.HasPrefix(name, "veil_") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if len(got[name]) == 0 {
				t.Errorf("%s has no series before its first event", name)
			}
		})
	}
}

func TestDeclaredSeries(t *testing.T) {
	m := started(t)
	got := seriesOf(t, m.Registry)
	tests := []struct {
		family string
		want   []string
		absent []string
	}{
		{"veil_quota_refusals_total", []string{
			"limit=rpm,tier=starter", "limit=tpm,tier=starter", "limit=concurrent,tier=starter",
			"limit=month_tokens,tier=starter", "limit=month_cost_micros,tier=starter", "limit=rpm,tier=pro",
		}, nil},
		{"veil_failovers_total", []string{"from=openai,to=anthropic", "from=anthropic,to=openai", "from=openai,to=openai"},
			[]string{"from=openai,to=azure"}},
		{"veil_retries_denied_total", []string{"provider=openai", "provider=anthropic"}, nil},
		{"veil_overloaded_total", []string{"provider=,reason=listener", "provider=openai,reason=upstream_pool",
			"provider=anthropic,reason=supplier_in_flight"}, nil},
		{"veil_requests_total", []string{
			"endpoint=chat_completions,model=gpt-4o,provider=openai,status_class=2xx",
			"endpoint=chat_completions,model=gpt-4o-mini,provider=openai,status_class=5xx",
			"endpoint=chat_completions,model=wedsync-fast,provider=openai,status_class=none",
			"endpoint=chat_completions,model=other,provider=anthropic,status_class=4xx",
		}, []string{
			"endpoint=chat_completions,model=other,provider=openai,status_class=2xx",
			"endpoint=chat_completions,model=gpt-4o,provider=azure,status_class=2xx",
			"endpoint=chat_completions,model=gpt-4o,provider=anthropic,status_class=2xx",
		}},
		{"veil_request_duration_seconds", []string{"endpoint=chat_completions,model=gpt-4o,provider=openai,status_class=2xx"}, nil},
		{"veil_upstream_duration_seconds", []string{"model=other,provider=anthropic,status_class=none"}, nil},
		{"veil_ttft_seconds", []string{"model=gpt-4o-mini,provider=openai", "model=other,provider=anthropic"}, nil},
		{"veil_stream_duration_seconds", []string{"model=wedsync-fast,provider=openai"}, nil},
		{"veil_tokens_total", []string{"key_source=client,kind=completion,model=gpt-4o,provider=openai",
			"key_source=platform,kind=prompt,model=other,provider=anthropic"}, nil},
		{"veil_cost_usd_total", []string{"key_source=platform,model=gpt-4o,provider=openai"}, nil},
		{"veil_season_active", []string{"season=peak", "season=holidays"}, nil},
		{"veil_provider_headroom_ratio", []string{"kind=requests,provider=openai", "kind=tokens,provider=anthropic"}, nil},
		{"veil_streams_interrupted_total", []string{"reason=client_gone", "reason=upstream_error", "reason=idle_timeout", "reason=shutdown"}, nil},
		{"veil_usage_sink_records_total", []string{"outcome=delivered,sink=stdout", "outcome=dropped,sink=stdout",
			"outcome=retried,sink=stdout", "outcome=spilled,sink=stdout"}, nil},
		{"veil_key_fetches_total", []string{"result=ok", "result=error"}, nil},
		{"veil_config_reloads_total", []string{"result=applied", "result=refused"}, nil},
		{"veil_alerts_total", []string{"outcome=sent", "outcome=failed", "outcome=dropped"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.family, func(t *testing.T) {
			have := got[tt.family]
			for _, w := range tt.want {
				if !slices.Contains(have, w) {
					t.Errorf("no series {%s}; have %q", w, have)
				}
			}
			for _, a := range tt.absent {
				if slices.Contains(have, a) {
					t.Errorf("series {%s} was declared, but the config does not name it", a)
				}
			}
		})
	}
}

func TestDeclareFollowsReloads(t *testing.T) {
	m := started(t)
	cfg := testConfig()
	cfg.Tiers = append(cfg.Tiers, config.Tier{Name: "enterprise"})
	cfg.Seasons = cfg.Seasons[:1]
	m.Declare(cfg)
	got := seriesOf(t, m.Registry)
	if !slices.Contains(got["veil_quota_refusals_total"], "limit=rpm,tier=enterprise") {
		t.Error("a tier added by a reload has no refusal series")
	}
	if want := []string{"season=peak"}; !slices.Equal(got["veil_season_active"], want) {
		t.Errorf("seasons after the reload %q, want %q", got["veil_season_active"], want)
	}
}

func TestDeclareSkipsInvalidNames(t *testing.T) {
	m := New()
	cfg := &config.Config{
		Providers: []config.Provider{{Name: "bad\xff", Models: []string{"m\xfe"}}, {Name: "ok", Models: []string{"x\xff"}}},
		Tiers:     []config.Tier{{Name: "\xff"}},
		Seasons:   []config.Season{{Name: "\xfe", From: "01-01", To: "12-31"}},
	}
	m.Declare(cfg) // must not panic
	got := seriesOf(t, m.Registry)
	for family, labels := range got {
		for _, l := range labels {
			if !utf8.ValidString(l) {
				t.Errorf("%s{%s} has an invalid label value", family, l)
			}
		}
	}
}

func TestSeasonActive(t *testing.T) {
	seasons := []config.Season{
		{Name: "peak", From: "03-01", To: "06-30", TimeZone: "Europe/London"},
		{Name: "late", From: "06-01", To: "07-31"},
		{Name: "peak", From: "09-01", To: "10-31", TimeZone: "Europe/London"},
		{Name: "holidays", From: "12-15", To: "01-05"},
	}
	tests := []struct {
		name   string
		now    time.Time
		active string // "" for none
	}{
		{"spring peak", time.Date(2026, 4, 10, 12, 0, 0, 0, time.UTC), "peak"},
		{"the first of two covering seasons decides", time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC), "peak"},
		{"only the second covers", time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC), "late"},
		{"autumn window of the same name", time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC), "peak"},
		{"across the new year", time.Date(2027, 1, 2, 12, 0, 0, 0, time.UTC), "holidays"},
		{"none", time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), ""},
		{"the season's own time zone", time.Date(2026, 2, 28, 23, 30, 0, 0, time.UTC), ""},
		{"London is an hour ahead in summer", time.Date(2026, 8, 31, 23, 30, 0, 0, time.UTC), "peak"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			m.now = func() time.Time { return tt.now }
			m.Declare(&config.Config{Seasons: seasons})
			got := seriesOf(t, m.Registry)["veil_season_active"]
			if want := []string{"season=holidays", "season=late", "season=peak"}; !slices.Equal(sorted(got), want) {
				t.Fatalf("series %q, want one per season name %q", got, want)
			}
			for _, name := range []string{"peak", "late", "holidays"} {
				want := 0.0
				if name == tt.active {
					want = 1
				}
				if v := gaugeValue(t, m.Registry, "veil_season_active", "season", name); v != want {
					t.Errorf("veil_season_active{season=%q} = %v, want %v", name, v, want)
				}
			}
		})
	}
}

func TestNoSeasonsNoSeries(t *testing.T) {
	m := New()
	m.Declare(&config.Config{})
	if got := seriesOf(t, m.Registry)["veil_season_active"]; len(got) != 0 {
		t.Errorf("series %q without seasons", got)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// gaugeValue reads the value of the series of family whose label is value.
func gaugeValue(t *testing.T, r prometheus.Gatherer, family, label, value string) float64 {
	t.Helper()
	return find(t, r, family, map[string]string{label: value}).GetGauge().GetValue()
}

// find returns the series of family that has every label of want.
func find(t *testing.T, r prometheus.Gatherer, family string, want map[string]string) *dto.Metric {
	t.Helper()
	families, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	t.Fatalf("no series %s%v", family, want)
	return nil
}

func TestHeadroom(t *testing.T) {
	tests := []struct {
		name               string
		remaining, limit   [2]int64 // requests, tokens; -1: not sent
		wantReqs, wantToks float64  // NaN: unknown
	}{
		{"never said", [2]int64{-1, -1}, [2]int64{-1, -1}, math.NaN(), math.NaN()},
		{"remaining without a limit", [2]int64{40, 900}, [2]int64{-1, -1}, math.NaN(), math.NaN()},
		{"both", [2]int64{45, 3000}, [2]int64{500, 30000}, 0.09, 0.1},
		{"used up", [2]int64{0, 0}, [2]int64{500, 30000}, 0, 0},
		{"zero limit", [2]int64{0, 5}, [2]int64{0, 10}, math.NaN(), 0.5},
		{"more left than the limit", [2]int64{600, 30000}, [2]int64{500, 30000}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			reg := health.NewRegistry("openai")
			m.WatchHealth(reg)
			l := health.NoRateLimits
			l.RemainingRequests, l.RemainingTokens = tt.remaining[0], tt.remaining[1]
			l.LimitRequests, l.LimitTokens = tt.limit[0], tt.limit[1]
			reg.Target("openai").ReportRateLimits(l, time.Now())
			for kind, want := range map[string]float64{HeadroomRequests: tt.wantReqs, HeadroomTokens: tt.wantToks} {
				got := find(t, m.Registry, "veil_provider_headroom_ratio", map[string]string{"provider": "openai", "kind": kind}).GetGauge().GetValue()
				if math.IsNaN(want) != math.IsNaN(got) || !math.IsNaN(want) && math.Abs(got-want) > 1e-9 {
					t.Errorf("%s headroom = %v, want %v", kind, got, want)
				}
			}
		})
	}
}

// TestHeadroomPool: the headroom of a pool whose keys are in two
// organisations is over both, each counted once.
func TestHeadroomPool(t *testing.T) {
	m := New()
	reg := health.NewRegistry("openai")
	m.WatchHealth(reg)
	now := time.Now()
	tg := reg.Target("openai")
	for i, r := range []struct {
		org         string
		left, limit int64
	}{{"org-a", 10, 500}, {"org-b", 4000, 5000}, {"org-a", 5, 500}} {
		tg.ReportAccountRateLimits(health.OrgAccount([]byte(r.org)), health.RateLimits{LimitRequests: r.limit,
			RemainingRequests: r.left, LimitTokens: -1, RemainingTokens: -1, ResetRequests: time.Minute, ResetTokens: -1},
			now.Add(time.Duration(i)*time.Millisecond))
	}
	got := find(t, m.Registry, "veil_provider_headroom_ratio", map[string]string{"provider": "openai", "kind": HeadroomRequests}).GetGauge().GetValue()
	if want := 4005.0 / 5500; math.Abs(got-want) > 1e-9 {
		t.Errorf("requests headroom = %v, want %v over both organisations", got, want)
	}
}

func TestObserveStream(t *testing.T) {
	m := New()
	m.SetModels(configured)
	model := []byte("gpt-4o-mini")
	m.ObserveStream("openai", model, 0.8, 42)
	m.ObserveStream("openai", model, 0, 3) // cut before its first event
	m.ObserveStream("openai", []byte("gpt-9"), 1.2, 540)
	ttft := find(t, m.Registry, "veil_ttft_seconds", map[string]string{"provider": "openai", "model": "gpt-4o-mini"}).GetHistogram()
	if ttft.GetSampleCount() != 1 || ttft.GetSampleSum() != 0.8 {
		t.Errorf("ttft count %d sum %v, want one of 0.8: a stream with no first event has no time to it", ttft.GetSampleCount(), ttft.GetSampleSum())
	}
	dur := find(t, m.Registry, "veil_stream_duration_seconds", map[string]string{"provider": "openai", "model": "gpt-4o-mini"}).GetHistogram()
	if dur.GetSampleCount() != 2 {
		t.Errorf("stream durations %d, want 2", dur.GetSampleCount())
	}
	other := find(t, m.Registry, "veil_stream_duration_seconds", map[string]string{"provider": "openai", "model": OtherModel}).GetHistogram()
	if b := bucketOf(other, 540); b != 600 {
		t.Errorf("a nine-minute stream falls in the bucket le=%v, want 600", b)
	}
	if a := testing.AllocsPerRun(100, func() { m.ObserveStream("openai", model, 0.5, 10) }); a > 0 {
		t.Errorf("%.1f allocations per stream", a)
	}
}

func TestLongRequestsHaveABucket(t *testing.T) {
	m := New()
	m.SetModels(configured)
	m.ObserveRequest("chat_completions", "openai", []byte("gpt-4o"), 200, 540)
	h := find(t, m.Registry, "veil_request_duration_seconds", map[string]string{"model": "gpt-4o"}).GetHistogram()
	if b := bucketOf(h, 540); b != 600 {
		t.Errorf("a nine-minute request falls in the bucket le=%v, want 600", b)
	}
}

// bucketOf is the upper bound of the first bucket of h that holds a
// sample of v; +Inf when none does.
func bucketOf(h *dto.Histogram, v float64) float64 {
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() >= v && b.GetCumulativeCount() > 0 {
			return b.GetUpperBound()
		}
	}
	return math.Inf(1)
}

func TestQuotaRefused(t *testing.T) {
	m := New()
	m.Declare(testConfig())
	m.QuotaRefused("starter", "rpm")
	m.QuotaRefused("starter", "rpm")
	m.QuotaRefused("pro", "month_cost_micros")
	m.QuotaRefused("\xff", "rpm") // must not panic
	for _, tc := range []struct {
		tier, limit string
		want        float64
	}{{"starter", "rpm", 2}, {"pro", "month_cost_micros", 1}, {"starter", "tpm", 0}} {
		if got := testutil.ToFloat64(m.quotaRefusals.WithLabelValues(tc.tier, tc.limit)); got != tc.want {
			t.Errorf("veil_quota_refusals_total{tier=%q,limit=%q} = %v, want %v", tc.tier, tc.limit, got, tc.want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	m := New()
	m.SetBuildInfo("1.4.0", "0123abc")
	got := seriesOf(t, m.Registry)["veil_build_info"]
	if len(got) != 1 || !strings.HasPrefix(got[0], "commit=0123abc,go_version=go") || !strings.HasSuffix(got[0], ",version=1.4.0") {
		t.Fatalf("veil_build_info %q, want one series with the version and commit", got)
	}
	if v := gaugeValue(t, m.Registry, "veil_build_info", "version", "1.4.0"); v != 1 {
		t.Errorf("value %v, want 1", v)
	}
}

func TestCacheBeforeAndAfterWatch(t *testing.T) {
	m := New()
	got := seriesOf(t, m.Registry)
	for _, name := range []string{"veil_cache_hits_total", "veil_cache_bytes"} {
		if f := find(t, m.Registry, name, nil); len(got[name]) != 1 || f.GetCounter().GetValue()+f.GetGauge().GetValue() != 0 {
			t.Errorf("%s without a cache: %q, want one series at zero", name, got[name])
		}
	}
	m.WatchCache(func() cache.Stats { return cache.Stats{Hits: 3, CostBytes: 1024} })
	for name, want := range map[string]float64{"veil_cache_hits_total": 3, "veil_cache_bytes": 1024, "veil_cache_misses_total": 0} {
		f := find(t, m.Registry, name, nil)
		if got := f.GetCounter().GetValue() + f.GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
